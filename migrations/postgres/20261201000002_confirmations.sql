-- Signup confirmations (double opt-in): one row per confirmation message
-- sent. The link in the message carries the row's id, signed; the row makes
-- the link single-use and holds what the abuse limits count.

-- The change sequence of confirmed addresses, taken as the suppression
-- list's is: every confirmation first increments this single row and holds
-- its lock until it commits, so that sequence numbers become visible in the
-- order they were taken and a reader polling `seq > cursor` never skips one
-- that commits late. Requests for new messages lock it too, so that the
-- limits are counted one request at a time across every replica.
create table confirmation_seq (
    id       boolean primary key default true check (id),
    last_seq bigint not null
);
insert into confirmation_seq (id, last_seq) values (true, 0);

create table confirmations (
    id           uuid primary key,
    address_key  text not null,
    -- the normalized address, as shown to users
    email        text not null,
    -- where the link leads after confirming; its origin was allowed when
    -- the request was made
    redirect_url text,
    -- the caller's own JSON, handed back in the change feed
    metadata     jsonb,
    -- who asked: the API key's digest prefix, and a public key's client
    -- address; the per-client limit counts by it
    client       text not null,
    requested_at timestamptz not null,
    expires_at   timestamptz not null,
    confirmed_at timestamptz,
    -- the change sequence, taken when the address is confirmed
    seq          bigint unique
);
create index confirmations_address on confirmations (address_key, requested_at);
create index confirmations_client on confirmations (client, requested_at);
