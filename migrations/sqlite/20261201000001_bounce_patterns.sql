-- Bounce patterns: recent rejections (bounces and replies to verification
-- probes) grouped by the receiving provider and a normalised reply, so
-- that many recipients refused for one reason show up as one group.
-- Times are epoch milliseconds.

-- One row a pattern: the normalised reply as first seen, and when the
-- warning that it stands out was last logged.
create table bounce_patterns (
    provider      text not null,
    -- hex digest of the code, enhanced code and lower-case text
    pattern_key   text not null,
    code          integer not null,
    enhanced_code text,
    text          text not null,
    sender_side   integer not null,
    announced_at  integer,
    primary key (provider, pattern_key)
) strict;

-- One row per pattern, hour and recipient: recipients are counted once
-- however often they bounce. The recipient is a digest of the address,
-- never the address.
create table bounce_pattern_sightings (
    provider    text not null,
    pattern_key text not null,
    hour        integer not null,
    recipient   text not null,
    first_seen  integer not null,
    last_seen   integer not null,
    events      integer not null,
    primary key (provider, pattern_key, hour, recipient)
) strict;

-- The window of GET /stats, and the purge.
create index bounce_pattern_sightings_last_seen on bounce_pattern_sightings (last_seen);
