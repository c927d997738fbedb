-- mailvet initial schema (SQLite).
--
-- The same tables as migrations/postgres; timestamps are INTEGER
-- milliseconds since the Unix epoch (UTC) so that comparisons are numeric,
-- and JSON is stored as TEXT.

-- Cached verification verdicts, one per address.
create table verifications (
    address_key text primary key,
    email       text not null,
    status      text not null,
    reason      text not null,
    result      text not null,
    checked_at  integer not null,
    expires_at  integer not null
) strict;
create index verifications_expires_at on verifications (expires_at);

-- The change sequence of the suppression list. SQLite admits one writer at
-- a time, so a sequence taken inside a write transaction is committed before
-- any later one is taken; the table keeps both backends' code alike.
create table suppression_seq (
    id       integer primary key check (id = 1),
    last_seq integer not null
) strict;
insert into suppression_seq (id, last_seq) values (1, 0);

-- The suppression list; removals stay as tombstones (`deleted = 1`).
create table suppressions (
    address_key   text primary key,
    email         text not null,
    reason        text not null,
    source        text not null,
    smtp_code     integer,
    enhanced_code text,
    diagnostic    text,
    mx_host       text,
    deleted       integer not null default 0,
    seq           integer not null unique,
    created_at    integer not null,
    updated_at    integer not null
) strict;
create index suppressions_active_reason on suppressions (reason) where deleted = 0;

-- Every bounce report received.
create table bounce_events (
    id            integer primary key autoincrement,
    address_key   text not null,
    email         text not null,
    kind          text not null,
    origin        text not null,
    smtp_code     integer,
    enhanced_code text,
    diagnostic    text,
    -- the MTA that reported the failure (DSN Remote-MTA), when known
    mx_host       text,
    received_at   integer not null
) strict;
create index bounce_events_key_time on bounce_events (address_key, received_at);
create index bounce_events_time on bounce_events (received_at);
