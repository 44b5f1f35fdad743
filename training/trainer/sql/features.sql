-- Every feature of payments/features.py for every query row, as DOUBLE (NULL = missing); the
-- runner keeps each table's columns in APPROVAL_FEATURES or RETRY_FEATURES order. Rates are
-- shrunk toward their parent so a pair never seen is its parent's rate, never 0/0.
CREATE OR REPLACE TABLE features AS
WITH base AS (
    SELECT
        q.*,
        first_date,
        c.amount_minor, c.currency, c.amount_usd, c.merchant_value, c.fx_needed,
        c.months_to_expiry, c.attempt_no, c.is_retry, c.local_hour, c.dow, c.dom, c.brand,
        c.funding, c.product_tier, c.is_commercial, c.issuer_country, c.merchant_country,
        c.ip_country, c.mcc, c.channel, c.cit_mit, c.cof_type, c.is_initial_cof,
        c.network_token, c.three_ds, c.challenge, c.sca_exemption, c.cvv_present,
        c.avs_provided, c.customer_in_session, c.credential_changed, c.response_code,
        c.visa_category, c.merchant_advice_code, c.family,
        epoch_ms(q.eval_ms + o.offset_s * 1000) AS card_now,
        epoch_ms(cs.last_recovery_ms + o.offset_s * 1000) AS card_recovery,
        cs.approvals,
        cs.approved_usd,
        cs.last_approval_ms,
        cs.last_nsf_ms,
        cs.last_recovery_ms,
        cs.recoveries,
        lp.attempts AS payment_attempts,
        lp.first_decline_ms,
        rr.route_code,
        list_contains(rr.local_countries, c.issuer_country) AS route_is_local,
        d24.n AS card_n24, d24.h AS card_d24, d7.n AS card_n7, d7.h AS card_d7,
        (rt.h + {route_w} * {prior}) / (rt.n + {route_w}) AS route_rate,
        ir.n AS ir_n,
        ir.h AS ir_h,
        br.n AS br_n,
        br.h AS br_h,
        (mr.h + {merchant_w} * {prior}) / (mr.n + {merchant_w}) AS merchant_rate,
        adv.wait_s AS advice_wait_s
    FROM queries AS q
    CROSS JOIN (SELECT min(CAST(ts_utc AS DATE)) AS first_date FROM events)
    JOIN events AS c ON c.attempt_id = q.ctx_id
    LEFT JOIN offsets AS o ON o.country = c.issuer_country
    LEFT JOIN routes_ref AS rr ON rr.route_id = q.route_id
    LEFT JOIN advice_ref AS adv ON adv.code = c.merchant_advice_code
    JOIN lk_card_state AS cs USING (qid)
    JOIN lk_payment AS lp USING (qid)
    JOIN lk_card_24h AS d24 USING (qid)
    JOIN lk_card_7d AS d7 USING (qid)
    JOIN lk_route_7d AS rt USING (qid)
    JOIN lk_issuer_route_7d AS ir USING (qid)
    JOIN lk_bin_route_7d AS br USING (qid)
    JOIN lk_merchant_7d AS mr USING (qid)
),
rates AS (
    SELECT *, (ir_h + {pair_w} * route_rate) / (ir_n + {pair_w}) AS issuer_route_rate FROM base
)
SELECT
    qid,
    kind,
    attempt_id,
    payment_id,
    ctx_id AS parent_attempt_id,
    epoch_ms(eval_ms)::TIMESTAMPTZ AS ts_utc,
    CAST(epoch_ms(eval_ms) AS DATE) - first_date AS day,
    approved,
    is_cross_border,
    cit_mit,
    brand,
    decline_family,
    amount_minor,
    currency,
    amount_usd,
    merchant_value,
    propensity,
    route_id,
    logged,
    delay_s,
    -- request
    ln(1 + amount_usd) AS log_amount_usd,
    fx_needed::DOUBLE AS fx_needed,
    months_to_expiry::DOUBLE AS months_to_expiry,
    attempt_no::DOUBLE AS attempt_no,
    is_retry::DOUBLE AS is_retry,
    local_hour::DOUBLE AS local_hour,
    dow::DOUBLE AS dow,
    dom::DOUBLE AS dom,
    list_position({BRANDS}, brand) - 1 AS brand_code,
    list_position({FUNDING}, funding) - 1 AS funding_code,
    list_position({TIERS}, product_tier) - 1 AS tier_code,
    is_commercial::DOUBLE AS is_commercial,
    list_position({COUNTRIES}, issuer_country) - 1 AS issuer_country_code,
    list_position({COUNTRIES}, merchant_country) - 1 AS merchant_country_code,
    (merchant_country <> issuer_country)::DOUBLE AS is_foreign_merchant,
    (ip_country <> issuer_country)::DOUBLE AS ip_mismatch,
    TRY_CAST(mcc AS DOUBLE) AS mcc,
    list_position({CHANNELS}, channel) - 1 AS channel_code,
    (cit_mit = 'CIT')::DOUBLE AS is_cit,
    list_position({COF_TYPES}, cof_type) - 1 AS cof_type_code,
    is_initial_cof::DOUBLE AS is_initial_cof,
    network_token::DOUBLE AS network_token,
    three_ds::DOUBLE AS three_ds,
    challenge::DOUBLE AS challenge,
    list_position({EXEMPTIONS}, sca_exemption) - 1 AS sca_exemption_code,
    cvv_present::DOUBLE AS cvv_present,
    avs_provided::DOUBLE AS avs_provided,
    customer_in_session::DOUBLE AS customer_in_session,
    credential_changed::DOUBLE AS credential_changed,
    -- card history: counts end at anchor_ms, times-since run to eval_ms
    card_n24::DOUBLE AS card_attempts_24h,
    card_d24::DOUBLE AS card_declines_24h,
    card_n7::DOUBLE AS card_attempts_7d,
    card_d7::DOUBLE AS card_declines_7d,
    (eval_ms - last_approval_ms) / {hour_ms} AS card_hours_since_approval,
    CASE
        WHEN approvals > 0 AND approved_usd > 0 THEN amount_usd / (approved_usd / approvals)
    END AS card_amount_ratio,
    (eval_ms - last_nsf_ms) / {hour_ms} AS card_hours_since_nsf,
    recoveries::DOUBLE AS card_recoveries,
    (eval_ms - last_recovery_ms) / {day_ms} AS card_days_since_recovery,
    -- calendar at the cardholder (issuer-country clock) at eval_ms
    hour(card_now)::DOUBLE AS card_local_hour,
    isodow(card_now)::DOUBLE AS card_dow,
    day(card_now)::DOUBLE AS card_dom,
    (day(last_day(card_now)) - day(card_now))::DOUBLE AS card_days_to_month_end,
    ((day(card_now) - day(card_recovery) + 45) % 30 - 15)::DOUBLE AS payday_dom_gap,
    ((isodow(card_now) - isodow(card_recovery) + 7) % 7)::DOUBLE AS payday_dow_gap,
    merchant_rate AS merchant_rate_7d,
    -- the scored route
    route_code::DOUBLE AS route_code,
    route_is_local::DOUBLE AS route_is_local,
    route_rate AS route_rate_7d,
    issuer_route_rate AS issuer_route_rate_7d,
    ir_n::DOUBLE AS issuer_route_attempts_7d,
    (br_h + {pair_w} * issuer_route_rate) / (br_n + {pair_w}) AS bin_route_rate_7d,
    -- the decline being retried (retry rows; ctx is the decline)
    list_position({DECLINE_CODES}, response_code) - 1 AS decline_code,
    visa_category::DOUBLE AS decline_visa_category,
    TRY_CAST(merchant_advice_code AS DOUBLE) AS decline_advice_code,
    list_position({FAMILIES}, family) - 1 AS decline_family_code,
    coalesce(advice_wait_s, 0) / {hour_s} AS advice_wait_h,
    payment_attempts::DOUBLE AS attempts_so_far,
    (anchor_ms - first_decline_ms) / {hour_ms} AS hours_since_first_decline,
    delay_s / {hour_s} AS delay_h
FROM rates;
