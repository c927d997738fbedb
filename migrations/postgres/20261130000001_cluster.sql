-- What every replica on this database shares so that mailvet stays polite
-- however many replicas run (docs/ARCHITECTURE.md, "Several replicas").
-- All times are the database's own clock (`now()`), never a replica's, so
-- clock skew between replicas changes nothing.

-- SMTP session slots. A scope ('host:<mx name>' or 'ip:<address>') has at
-- most as many rows as its session cap; a row is one open session, held
-- by one replica (`holder`) under the replica's own number for it
-- (`lease_id`) until it is released or its lease runs out. A replica renews
-- the leases of its live sessions; those of a replica that died lapse.
create table session_leases (
    scope      text        not null,
    slot       integer     not null,
    holder     uuid        not null,
    lease_id   bigint      not null,
    expires_at timestamptz not null,
    primary key (scope, slot)
);
create index session_leases_holder on session_leases (holder, lease_id);

-- The probe budget, one bucket per key ('all:<domain>', 'public:<domain>',
-- 'client:<client>/<domain>'): GCRA's theoretical arrival time.
create table probe_budget (
    key text        primary key,
    tat timestamptz not null
);
create index probe_budget_tat on probe_budget (tat);

-- What a catch-all check found per domain, for every replica.
create table catch_all_domains (
    domain     text        primary key,
    catch_all  boolean     not null,
    expires_at timestamptz not null
);

-- Single-address verifications in progress: a replica asked for an
-- address that another is verifying waits for that verdict.
create table verifications_in_flight (
    address_key text        primary key,
    holder      uuid        not null,
    expires_at  timestamptz not null
);
create index verifications_in_flight_holder on verifications_in_flight (holder);

-- Claims a session slot in every scope (in the order given, so that two
-- claims never wait on each other in a circle) and, when budget keys are
-- given, takes one probe from each of their buckets; all or nothing.
-- Returns whether the slots were granted; when the budget refuses (then
-- nothing is taken), which bucket (its index, from 1) asks for the longest
-- wait, and how long; and the domain's catch-all answer if one is known.
create function mailvet_claim_session(
    p_holder        uuid,
    p_lease_id      bigint,
    p_scopes        text[],
    p_cap           integer,
    p_lease_ms      bigint,
    p_budget_keys   text[],
    p_emission_ms   double precision[],
    p_domain        text
) returns table (granted boolean, budget_wait_ms bigint, refused_bucket integer, catch_all boolean)
language plpgsql as $$
declare
    v_now       timestamptz := now();
    v_known     boolean;
    v_scope     text;
    v_slot      integer;
    v_claimed   boolean;
    v_tats      timestamptz[] := '{}';
    v_tat       timestamptz;
    v_emission  interval;
    v_tolerance interval;
    v_wait      interval := interval '0';
    v_refused   integer := 0;
    i           integer;
begin
    select c.catch_all into v_known
      from catch_all_domains c
     where c.domain = p_domain and c.expires_at > v_now;

    -- The budget first: refused, nothing is claimed.
    if coalesce(array_length(p_budget_keys, 1), 0) > 0 then
        insert into probe_budget (key, tat)
        select k, v_now from unnest(p_budget_keys) as k
        on conflict (key) do nothing;
        perform 1 from probe_budget b
         where b.key = any(p_budget_keys)
         order by b.key
           for update;
        for i in 1 .. array_length(p_budget_keys, 1) loop
            select greatest(b.tat, v_now) into v_tat
              from probe_budget b where b.key = p_budget_keys[i];
            v_emission  := make_interval(secs => p_emission_ms[i] / 1000.0);
            -- A bucket of 60 s holds per_minute probes: a burst of all of
            -- them, then one per emission interval.
            v_tolerance := interval '60 seconds' - v_emission;
            if v_tat - v_now - v_tolerance > v_wait then
                v_wait := v_tat - v_now - v_tolerance;
                v_refused := i;
            end if;
            v_tats := v_tats || (v_tat + v_emission);
        end loop;
        if v_wait > interval '0' then
            return query select false,
                greatest(1, ceil(extract(epoch from v_wait) * 1000))::bigint, v_refused, v_known;
            return;
        end if;
    end if;

    foreach v_scope in array p_scopes loop
        v_claimed := false;
        for v_slot in 0 .. greatest(p_cap, 1) - 1 loop
            insert into session_leases as l (scope, slot, holder, lease_id, expires_at)
            values (v_scope, v_slot, p_holder, p_lease_id,
                    v_now + make_interval(secs => p_lease_ms / 1000.0))
            on conflict (scope, slot) do update
               set holder = excluded.holder,
                   lease_id = excluded.lease_id,
                   expires_at = excluded.expires_at
             where l.expires_at <= v_now
            returning true into v_claimed;
            exit when v_claimed;
        end loop;
        if not coalesce(v_claimed, false) then
            delete from session_leases
             where holder = p_holder and lease_id = p_lease_id;
            return query select false, 0::bigint, 0, v_known;
            return;
        end if;
    end loop;

    if coalesce(array_length(p_budget_keys, 1), 0) > 0 then
        update probe_budget b
           set tat = t.tat
          from unnest(p_budget_keys, v_tats) as t(key, tat)
         where b.key = t.key;
    end if;
    return query select true, 0::bigint, 0, v_known;
end
$$;

-- Every change of the suppression list moves its sequence; the
-- notification reaches every listening replica when the change commits.
create function mailvet_notify_suppression_seq() returns trigger
language plpgsql as $$
begin
    perform pg_notify('mailvet_suppressions', new.last_seq::text);
    return null;
end
$$;

create trigger suppression_seq_notify
    after update on suppression_seq
    for each row execute function mailvet_notify_suppression_seq();
