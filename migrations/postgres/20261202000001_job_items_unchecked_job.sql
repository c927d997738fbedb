-- A job's items no longer carry a foreign key to their job. Uploads take
-- items in with COPY, and the key was checked once per row (a trigger and
-- a key-share lock of the job for every address): about 40 % of the time
-- of a 1,000,000-address upload. The store keeps the link itself: each
-- COPY runs in a transaction that first locks its job (`for key share`,
-- and only while the job is still uploading), and deleting a job locks it
-- (`for update`), then deletes its items, then the job, in one
-- transaction. SQLite keeps its key: there a check is a lookup in the
-- same process.
alter table job_items drop constraint if exists job_items_job_id_fkey;
