-- Running counts of one key's attempts ({keys}), for trailing windows by as-of lookups.
-- n_seq/h_seq: attempts and hits ({hit}) through this attempt in seq order; n_ts/h_ts: through
-- every attempt with ts <= this ts (peers included), so a lookup by time never splits a tie.
CREATE OR REPLACE TABLE hist_{name} AS
SELECT
    {keys},
    seq,
    ts_ms,
    count(*) OVER by_seq AS n_seq,
    sum(({hit})::INTEGER) OVER by_seq AS h_seq,
    count(*) OVER by_ts AS n_ts,
    sum(({hit})::INTEGER) OVER by_ts AS h_ts
FROM events
WINDOW
    by_seq AS (PARTITION BY {keys} ORDER BY seq ROWS UNBOUNDED PRECEDING),
    by_ts AS (PARTITION BY {keys} ORDER BY ts_ms RANGE UNBOUNDED PRECEDING);
