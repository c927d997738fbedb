-- Bulk verification jobs. A job is written while its upload streams in
-- (status 'uploading', invisible to the API), then queued. Its addresses
-- are claimed in chunks by any replica with FOR UPDATE SKIP LOCKED.
create table jobs (
    id               uuid primary key,
    status           text not null,
    total            bigint not null default 0,
    processed        bigint not null default 0,
    deliverable      bigint not null default 0,
    undeliverable    bigint not null default 0,
    risky            bigint not null default 0,
    unknown          bigint not null default 0,
    webhook_url      text,
    -- When the completion webhook is next due; null when there is none to send.
    webhook_due_at   timestamptz,
    webhook_attempts integer not null default 0,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    started_at       timestamptz,
    completed_at     timestamptz
);

create index jobs_active on jobs (created_at) where status in ('queued', 'running');
create index jobs_webhook_due on jobs (webhook_due_at) where webhook_due_at is not null;

-- One row per uploaded address, in input order (seq).
--   state 'pending': waiting; available_at is when it may be tried (a retry
--                    of a greylisted address waits).
--   state 'claimed': a replica is verifying it; available_at is the end of
--                    its lease, after which any replica may claim it again.
--   state 'done':    result holds the VerifyResult JSON.
create table job_items (
    job_id       uuid not null references jobs (id) on delete cascade,
    seq          bigint not null,
    email        text not null,
    domain       text not null,
    state        text not null default 'pending',
    available_at timestamptz not null,
    attempts     integer not null default 0,
    claimed_by   text,
    status       text,
    result       text,
    primary key (job_id, seq)
);

-- The work still to do, grouped by domain so that a claimed chunk holds
-- few domains with many addresses each (one SMTP session per domain).
create index job_items_todo on job_items (job_id, domain, seq) where state <> 'done';
