-- Every row to extract, one per (attempt, alternative scored):
--   approval         each attempt with amount_minor > 0, on its logged route, at its own time
--   route_candidate  each first attempt from {candidates_from_ms} on, once per eligible route
--   retry            each logged MIT retry whose delay the randomized-v1 policy drew
--   retry_candidate  each decline from {candidates_from_ms} on whose next reattempt that policy
--                    drew from the grid, once per grid delay, on the retry's route
-- ctx_id is the attempt whose request and history the features read; history is every event
-- with seq < seq_q; windows end at anchor_ms; times-since and calendars are taken at eval_ms.
CREATE OR REPLACE TABLE queries AS
WITH candidates AS (
    SELECT
        e.*,
        unnest(e.eligible_routes) AS candidate_route,
        len(e.eligible_routes) AS n_eligible
    FROM events AS e
    WHERE e.amount_minor > 0 AND e.parent_attempt_id IS NULL AND e.ts_ms >= {candidates_from_ms}
),
retry_pairs AS (
    SELECT
        r.attempt_id,
        r.route_id,
        r.approved,
        r.delay_propensity,
        r.is_cross_border,
        p.attempt_id AS parent_id,
        p.seq AS parent_seq,
        p.ts_ms AS parent_ms,
        p.family,
        (r.ts_ms - p.ts_ms) // 1000 AS delay_s,
        coalesce(adv.wait_s, 0) AS earliest_s,
        CASE p.family
            WHEN 'technical' THEN 'technical'
            WHEN 'insufficient_funds' THEN 'insufficient_funds'
            ELSE 'other'
        END AS family_group
    FROM events AS r
    JOIN events AS p ON p.attempt_id = r.parent_attempt_id
    LEFT JOIN advice_ref AS adv ON adv.code = p.merchant_advice_code
    WHERE r.retry_kind = 'retry' AND r.decided_by = 'randomized-v1' AND r.amount_minor > 0
),
grid_pairs AS (
    SELECT
        rp.*,
        g.delay_s AS candidate_delay_s,
        CASE WHEN g.delay_s >= rp.earliest_s THEN g.weight ELSE 0 END AS weight,
        g.delay_s = max(g.delay_s) OVER (PARTITION BY rp.attempt_id) AS is_last
    FROM retry_pairs AS rp
    JOIN delay_weights AS g ON g.family_group = rp.family_group
    WHERE rp.parent_ms >= {candidates_from_ms}
        AND rp.delay_s IN (SELECT delay_s FROM delay_weights)
),
rows AS (
    SELECT
        'approval' AS kind,
        attempt_id,
        attempt_id AS ctx_id,
        route_id,
        seq AS seq_q,
        ts_ms AS anchor_ms,
        ts_ms AS eval_ms,
        NULL::BIGINT AS delay_s,
        true AS logged,
        approved,
        route_propensity AS propensity,
        family AS decline_family,
        is_cross_border
    FROM events
    WHERE amount_minor > 0
    UNION ALL
    SELECT
        'route_candidate',
        attempt_id,
        attempt_id,
        candidate_route,
        seq,
        ts_ms,
        ts_ms,
        NULL,
        candidate_route = route_id,
        CASE WHEN candidate_route = route_id THEN approved END,
        -- incumbent-eps: the incumbent gets 1 - eps + eps/n, every other route eps/n. Knowable
        -- for the others when the logged route was the incumbent, or when there are two routes.
        CASE
            WHEN candidate_route = route_id THEN route_propensity
            WHEN route_propensity > 1 - {epsilon} THEN {epsilon} / n_eligible
            WHEN n_eligible = 2 THEN 1 - {epsilon} + {epsilon} / n_eligible
        END,
        CASE WHEN candidate_route = route_id THEN family END,
        is_cross_border
    FROM candidates
    UNION ALL
    SELECT
        'retry',
        attempt_id,
        parent_id,
        route_id,
        parent_seq + 1,
        parent_ms,
        parent_ms + delay_s * 1000,
        delay_s,
        true,
        approved,
        delay_propensity,
        family,
        is_cross_border
    FROM retry_pairs
    UNION ALL
    -- randomized-v1: grid weights by decline family, none below the advice code's wait; with no
    -- delay left the longest one is sent.
    SELECT
        'retry_candidate',
        attempt_id,
        parent_id,
        route_id,
        parent_seq + 1,
        parent_ms,
        parent_ms + candidate_delay_s * 1000,
        candidate_delay_s,
        candidate_delay_s = delay_s,
        CASE WHEN candidate_delay_s = delay_s THEN approved END,
        CASE
            WHEN sum(weight) OVER (PARTITION BY attempt_id) > 0
                THEN weight / sum(weight) OVER (PARTITION BY attempt_id)
            ELSE is_last::DOUBLE
        END,
        family,
        is_cross_border
    FROM grid_pairs
)
SELECT
    row_number() OVER (ORDER BY r.kind, r.attempt_id, r.route_id, r.delay_s) AS qid,
    r.*,
    c.card_key,
    c.payment_id,
    c.issuer_id,
    c.bin8,
    c.merchant_id
FROM rows AS r
JOIN events AS c ON c.attempt_id = r.ctx_id;
