-- Per query: the key's attempts and hits before it (seq < seq_q) with ts > anchor - {window_ms} ms.
CREATE OR REPLACE TABLE lk_{name}_{label} AS
WITH upto AS (
    SELECT q.qid, h.n_seq, h.h_seq
    FROM queries AS q
    ASOF LEFT JOIN hist_{name} AS h ON {on} AND q.seq_q > h.seq
),
below AS (
    SELECT q.qid, h.n_ts, h.h_ts
    FROM queries AS q
    ASOF LEFT JOIN hist_{name} AS h ON {on} AND q.anchor_ms - {window_ms} >= h.ts_ms
)
SELECT
    qid,
    coalesce(upto.n_seq, 0) - coalesce(below.n_ts, 0) AS n,
    coalesce(upto.h_seq, 0) - coalesce(below.h_ts, 0) AS h
FROM upto
JOIN below USING (qid);
