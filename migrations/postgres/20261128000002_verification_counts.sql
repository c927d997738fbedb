-- Verifications by status per hour, for GET /stats. Fresh verdicts only
-- (answers from the cache or the suppression list are not checks).
create table verification_counts (
    hour   timestamptz not null,
    status text not null,
    count  bigint not null,
    primary key (hour, status)
);

-- Suppressions counted by creation time.
create index suppressions_created_at on suppressions (created_at) where not deleted;
