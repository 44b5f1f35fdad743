-- The card's running history (card_key: PAR when present, else PAN hash) and the payment's, and
-- their values just before each query (seq < seq_q). A recovery is an approval whose previous
-- attempt on the card was an insufficient-funds decline: funds came back, most often on payday,
-- so recovery dates stand in for the card's pay cycle (the latent cycle is never read).
CREATE OR REPLACE TABLE hist_card_state AS
WITH marked AS (
    SELECT
        card_key,
        seq,
        ts_ms,
        approved,
        nsf,
        amount_usd,
        approved AND coalesce(lag(nsf) OVER (PARTITION BY card_key ORDER BY seq), false)
            AS recovery
    FROM events
)
SELECT
    card_key,
    seq,
    sum(approved::INTEGER) OVER by_seq AS approvals,
    sum(CASE WHEN approved THEN amount_usd ELSE 0 END) OVER by_seq AS approved_usd,
    max(CASE WHEN approved THEN ts_ms END) OVER by_seq AS last_approval_ms,
    max(CASE WHEN nsf THEN ts_ms END) OVER by_seq AS last_nsf_ms,
    max(CASE WHEN recovery THEN ts_ms END) OVER by_seq AS last_recovery_ms,
    sum(recovery::INTEGER) OVER by_seq AS recoveries
FROM marked
WINDOW by_seq AS (PARTITION BY card_key ORDER BY seq ROWS UNBOUNDED PRECEDING);

CREATE OR REPLACE TABLE lk_card_state AS
SELECT
    q.qid,
    coalesce(h.approvals, 0) AS approvals,
    coalesce(h.approved_usd, 0) AS approved_usd,
    h.last_approval_ms,
    h.last_nsf_ms,
    h.last_recovery_ms,
    coalesce(h.recoveries, 0) AS recoveries
FROM queries AS q
ASOF LEFT JOIN hist_card_state AS h ON q.card_key = h.card_key AND q.seq_q > h.seq;

CREATE OR REPLACE TABLE hist_payment AS
SELECT
    payment_id,
    seq,
    count(*) OVER by_seq AS attempts,
    min(CASE WHEN NOT approved THEN ts_ms END) OVER by_seq AS first_decline_ms
FROM events
WINDOW by_seq AS (PARTITION BY payment_id ORDER BY seq ROWS UNBOUNDED PRECEDING);

CREATE OR REPLACE TABLE lk_payment AS
SELECT q.qid, coalesce(h.attempts, 0) AS attempts, h.first_decline_ms
FROM queries AS q
ASOF LEFT JOIN hist_payment AS h ON q.payment_id = h.payment_id AND q.seq_q > h.seq;
