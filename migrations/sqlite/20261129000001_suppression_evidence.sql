-- The evidence behind each suppression, as in migrations/postgres: a JSON
-- object (as text) whose `kind` says what put the address on the list;
-- null for entries made before it was kept.
alter table suppressions add column evidence text;

-- For undo: live entries of one source put on the list within a span.
create index suppressions_live_source_created on suppressions (source, created_at)
    where deleted = 0;
