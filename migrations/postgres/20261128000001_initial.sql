-- mailvet initial schema (Postgres).
--
-- Addresses are stored twice: `email` is the normalized address as shown to
-- users, `address_key` is the matching key derived from it (see
-- docs/ARCHITECTURE.md, "Address matching"). Lookups always go by key.

-- Cached verification verdicts, one per address. A row past `expires_at` is
-- a miss; expired rows are purged in the background.
create table verifications (
    address_key text primary key,
    email       text not null,
    status      text not null,
    reason      text not null,
    -- the full VerifyResult as served by POST /verify
    result      jsonb not null,
    checked_at  timestamptz not null,
    expires_at  timestamptz not null
);
create index verifications_expires_at on verifications (expires_at);

-- The change sequence of the suppression list. Every write to
-- `suppressions` first increments this single row; the row lock is held until
-- the writing transaction commits, so sequence numbers become visible in
-- the order they were taken and a reader polling `seq > cursor` never skips
-- a change that commits late (docs/ARCHITECTURE.md, "The change feed").
create table suppression_seq (
    id       boolean primary key default true check (id),
    last_seq bigint not null
);
insert into suppression_seq (id, last_seq) values (true, 0);

-- The suppression list. Removals keep the row as a tombstone
-- (`deleted = true`) so that the change feed can report them.
create table suppressions (
    address_key   text primary key,
    email         text not null,
    reason        text not null,
    source        text not null,
    smtp_code     integer,
    enhanced_code text,
    diagnostic    text,
    mx_host       text,
    deleted       boolean not null default false,
    seq           bigint not null unique,
    created_at    timestamptz not null,
    updated_at    timestamptz not null
);
create index suppressions_active_reason on suppressions (reason) where not deleted;

-- Every bounce report received, hard or soft, kept for soft-bounce counting
-- and statistics.
create table bounce_events (
    id            bigint generated always as identity primary key,
    address_key   text not null,
    email         text not null,
    kind          text not null,
    -- where the report came from: dsn, json, ses, sendgrid, postmark, mailgun
    origin        text not null,
    smtp_code     integer,
    enhanced_code text,
    diagnostic    text,
    -- the MTA that reported the failure (DSN Remote-MTA), when known
    mx_host       text,
    received_at   timestamptz not null
);
create index bounce_events_key_time on bounce_events (address_key, received_at);
create index bounce_events_time on bounce_events (received_at);
