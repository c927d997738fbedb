-- Signup confirmations (double opt-in), as in migrations/postgres. Times
-- are milliseconds since the Unix epoch; metadata is JSON text.

-- The change sequence of confirmed addresses. SQLite admits one writer at
-- a time, so a sequence taken inside a write transaction is committed
-- before any later one is taken.
create table confirmation_seq (
    id       integer primary key check (id = 1),
    last_seq integer not null
) strict;
insert into confirmation_seq (id, last_seq) values (1, 0);

create table confirmations (
    id           text primary key,
    address_key  text not null,
    email        text not null,
    redirect_url text,
    metadata     text,
    client       text not null,
    requested_at integer not null,
    expires_at   integer not null,
    confirmed_at integer,
    seq          integer unique
) strict;
create index confirmations_address on confirmations (address_key, requested_at);
create index confirmations_client on confirmations (client, requested_at);
