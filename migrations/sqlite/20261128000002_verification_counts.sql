-- Verifications by status per hour, for GET /stats (hour as epoch ms).
create table verification_counts (
    hour   integer not null,
    status text not null,
    count  integer not null,
    primary key (hour, status)
) strict;

create index suppressions_created_at on suppressions (created_at) where deleted = 0;
