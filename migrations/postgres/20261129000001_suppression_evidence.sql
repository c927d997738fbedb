-- The evidence behind each suppression: the SMTP reply, the bounce report,
-- the DNS answer or the note that put the address on the list, with the
-- time it was observed (docs/ARCHITECTURE.md, "Evidence"). A JSON object
-- whose `kind` says which; null for entries made before it was kept.
alter table suppressions add column evidence jsonb;

-- An undo removes the live entries of one source put on the list within a
-- span of time (DELETE /suppressions?source=…&since=…).
create index suppressions_live_source_created on suppressions (source, created_at)
    where not deleted;
