-- Bounce patterns: recent rejections (bounces and replies to verification
-- probes) grouped by the receiving provider and a normalised reply, so
-- that many recipients refused for one reason show up as one group.

-- One row a pattern: the normalised reply as first seen, and when a
-- replica last warned that it stands out (so that the warning is logged
-- once, whichever replica sees it).
create table bounce_patterns (
    provider      text not null,
    -- hex digest of the code, enhanced code and lower-case text
    pattern_key   text not null,
    code          integer not null,
    enhanced_code text,
    text          text not null,
    sender_side   boolean not null,
    announced_at  timestamptz,
    primary key (provider, pattern_key)
);

-- One row per pattern, hour and recipient: recipients are counted once
-- however often they bounce. The recipient is a digest of the address,
-- never the address.
create table bounce_pattern_sightings (
    provider    text not null,
    pattern_key text not null,
    hour        timestamptz not null,
    recipient   text not null,
    first_seen  timestamptz not null,
    last_seen   timestamptz not null,
    events      bigint not null,
    primary key (provider, pattern_key, hour, recipient)
);

-- The window of GET /stats, and the purge.
create index bounce_pattern_sightings_last_seen on bounce_pattern_sightings (last_seen);
