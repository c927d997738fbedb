-- The job's largest domains, largest first, one per line (null when none
-- is large). Claims take their addresses before the others', so that the
-- domains whose sessions are capped per mail host start first and the job
-- does not end with one large domain verifying alone.
alter table jobs add column large_domains text;
