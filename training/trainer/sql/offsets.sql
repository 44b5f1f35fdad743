-- Each merchant country's UTC offset, inferred from the log itself: the quarter-hour offset that
-- reproduces the sent local_hour and dom of the most attempts of its first week. Time zones are
-- reference data: taken once from the start of the log, so later rows can never move them.
CREATE OR REPLACE TABLE offsets AS
WITH first_week AS (
    SELECT merchant_country AS country, epoch_ms(ts_utc) // 1000 AS ts_s, local_hour, dom
    FROM attempts
    WHERE ts_utc < (SELECT min(ts_utc) FROM attempts) + INTERVAL 7 DAY
),
scored AS (
    SELECT
        w.country,
        c.range * 900 AS offset_s,
        count(*) FILTER (
            WHERE hour(to_timestamp(w.ts_s + c.range * 900)) = w.local_hour
            AND day(to_timestamp(w.ts_s + c.range * 900)) = w.dom
        ) AS hits
    FROM first_week AS w
    CROSS JOIN range(-48, 57) AS c
    GROUP BY ALL
)
-- Ties (too few attempts to tell) go to the offset nearest UTC.
SELECT country, arg_max(offset_s, hits * 1000 - abs(offset_s) // 900) AS offset_s
FROM scored
GROUP BY country;
