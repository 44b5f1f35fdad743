"""The model features' definitions: every feature's name, meaning and encoding, the windows
they look back over, and the request and answer of one attempt.

Point-in-time rule: a feature of an attempt at time t sees only attempts strictly before it in
(ts, attempt_id) order, each with its answer (outcomes are known at their own time). Retry features
are taken at the decline being retried: the decline and everything before it, nothing after.
Windows "24 h" and "7 d" hold the earlier attempts with ts > anchor - window. Response-side fields
of the attempt being scored are never inputs (``RESPONSE_SIDE``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from forestgate.payments.codes import Family, ResponseCodes
from forestgate.payments.routetable import RouteTable

# Fixed vocabularies: a categorical feature is the index of its value here (NaN if absent).
# They equal the generator's label tuples (tests/features checks it).
BRANDS: tuple[str, ...] = ("visa", "mastercard")
FUNDING: tuple[str, ...] = ("credit", "debit", "prepaid")
TIERS: tuple[str, ...] = ("standard", "gold", "platinum", "business")
CHANNELS: tuple[str, ...] = ("ecommerce", "in_app", "recurring", "unscheduled_cof", "moto")
COF_TYPES: tuple[str, ...] = ("none", "recurring", "unscheduled", "cit_stored")
EXEMPTIONS: tuple[str, ...] = ("none", "low_value", "tra")
COUNTRIES: tuple[str, ...] = (
    *("US", "CA", "GB", "DE", "FR", "NL", "ES", "BR", "MX", "IN", "JP", "AU"),
)
FAMILIES: tuple[str, ...] = tuple(f.value for f in Family)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
CARD_WINDOWS_MS = (DAY_MS, 7 * DAY_MS)
RATE_WINDOW_MS = 7 * DAY_MS
LONGEST_WINDOW_MS = max(*CARD_WINDOWS_MS, RATE_WINDOW_MS)
# A decline can be retried for this long after its payment's first attempt (the network rules'
# retry window the generator follows: training/generator/policy.py WINDOW_S), so a retry
# consultation never refers back to a decline or payment older than this.
RETRY_HORIZON_MS = 14 * DAY_MS
# Trailing approval rates are shrunk toward their parent: route -> PRIOR_RATE, issuer x route ->
# route, BIN x route -> issuer x route, merchant -> PRIOR_RATE; a pair never seen is its parent.
PRIOR_RATE = 0.85
ROUTE_PRIOR_WEIGHT = 20.0
PAIR_PRIOR_WEIGHT = 10.0
MERCHANT_PRIOR_WEIGHT = 20.0

# Columns of attempts.parquet that are the answer or its economics, never an input for the
# attempt they belong to, plus every column of the truth and latent dimension tables.
RESPONSE_SIDE: frozenset[str] = frozenset(
    {
        *("response_code", "approved", "cvv_result", "avs_result", "merchant_advice_code"),
        *("visa_category", "mc_group", "eci_returned", "auth_latency_ms", "network_txn_id"),
        *("partial_amount", "interchange", "scheme_fee", "acquirer_fee", "fx_fee", "auth_fee"),
        *("integrity_fee", "total_cost", "merchant_value", "platform_revenue"),
        *("guardrail_violation", "guardrail_rule", "scenario_id"),
        # truth.parquet
        *("p_approve_true", "p_approve_true_by_route", "is_fraud", "chargeback_ts"),
        *("reason_family_true", "balance_at_attempt", "next_funding_ts", "velocity_24h"),
        # truth_cards / truth_issuers / truth_routes and cards' latent pay cycle and status
        *("pay_cycle", "pay_phase", "typical_amount_usd", "income_usd", "buffer_usd"),
        *("drain_days", "stressed", "status", "status_change_ts", "volume_weight", "alpha"),
        *("kappa", "generic_propensity", "mac_support", "token_support", "token_bonus"),
        *("sca_soft_decline_prob", "exemption_accept_prob", "us_3ds_penalty"),
        *("suspicion_half_life_h", "outage_count", "offset_route", "offset_route_country"),
        *("fraud_level",),
    }
)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One feature: all are float32, NaN when missing; categoricals hold a vocabulary index."""

    name: str
    description: str
    vocabulary: str | None = None  # the vocabulary a categorical indexes, else None


_SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec("log_amount_usd", "ln(1 + amount in USD)"),
    FeatureSpec("fx_needed", "1 if the presentment currency is not the card's currency"),
    FeatureSpec("months_to_expiry", "months until the credential expires"),
    FeatureSpec("attempt_no", "1 for a first attempt, n for the payment's n-th attempt"),
    FeatureSpec("is_retry", "1 for a reattempt (retry, cascade, step-up, customer retry)"),
    FeatureSpec("local_hour", "hour of day at the merchant, as sent"),
    FeatureSpec("dow", "ISO day of week at the merchant (Mon 1 .. Sun 7)"),
    FeatureSpec("dom", "day of month at the merchant"),
    FeatureSpec("brand_code", "card network", "BRANDS"),
    FeatureSpec("funding_code", "credit / debit / prepaid from the BIN", "FUNDING"),
    FeatureSpec("tier_code", "product tier from the BIN", "TIERS"),
    FeatureSpec("is_commercial", "1 for a commercial card"),
    FeatureSpec("issuer_country_code", "issuer country from the BIN", "COUNTRIES"),
    FeatureSpec("merchant_country_code", "merchant country", "COUNTRIES"),
    FeatureSpec("is_foreign_merchant", "1 if the merchant country is not the issuer country"),
    FeatureSpec("ip_mismatch", "1 if the IP country differs from the issuer country, NaN if none"),
    FeatureSpec("mcc", "merchant category code as an integer"),
    FeatureSpec("channel_code", "sales channel", "CHANNELS"),
    FeatureSpec("is_cit", "1 customer-initiated, 0 merchant-initiated"),
    FeatureSpec("cof_type_code", "credential-on-file type", "COF_TYPES"),
    FeatureSpec("is_initial_cof", "1 for the first transaction of a stored credential"),
    FeatureSpec("network_token", "1 if sent with a network token"),
    FeatureSpec("three_ds", "1 if authenticated with 3DS before authorization"),
    FeatureSpec("challenge", "1 if the 3DS flow challenged the cardholder"),
    FeatureSpec("sca_exemption_code", "SCA exemption claimed", "EXEMPTIONS"),
    FeatureSpec("cvv_present", "1 if a CVV was sent"),
    FeatureSpec("avs_provided", "1 if an address was sent for AVS"),
    FeatureSpec("customer_in_session", "1 if the cardholder is in session"),
    FeatureSpec("credential_changed", "1 if card data changed since the previous decline"),
    FeatureSpec("card_attempts_24h", "card's attempts in the 24 h before the anchor"),
    FeatureSpec("card_declines_24h", "card's declines in the 24 h before the anchor"),
    FeatureSpec("card_attempts_7d", "card's attempts in the 7 d before the anchor"),
    FeatureSpec("card_declines_7d", "card's declines in the 7 d before the anchor"),
    FeatureSpec("card_hours_since_approval", "hours from the card's last approval, NaN if none"),
    FeatureSpec("card_amount_ratio", "amount_usd / mean of the card's approved amounts"),
    FeatureSpec("card_hours_since_nsf", "hours from the card's last insufficient-funds decline"),
    FeatureSpec("card_recoveries", "card's recoveries: approvals right after an NSF decline"),
    FeatureSpec("card_days_since_recovery", "days from the card's last recovery (inferred payday)"),
    FeatureSpec("card_local_hour", "hour at the cardholder (issuer-country clock)"),
    FeatureSpec("card_dow", "ISO day of week at the cardholder"),
    FeatureSpec("card_dom", "day of month at the cardholder"),
    FeatureSpec("card_days_to_month_end", "days left in the cardholder's month"),
    FeatureSpec("payday_dom_gap", "card_dom minus the last recovery's dom, wrapped to [-15, 14]"),
    FeatureSpec("payday_dow_gap", "days since the last recovery's weekday, 0..6"),
    FeatureSpec("merchant_rate_7d", "merchant's smoothed approval rate over 7 d"),
    FeatureSpec("route_code", "the route scored", "ROUTES"),
    FeatureSpec("route_is_local", "1 if the route acquires the issuer country locally"),
    FeatureSpec("route_rate_7d", "route's smoothed approval rate over 7 d"),
    FeatureSpec("issuer_route_rate_7d", "issuer x route smoothed approval rate over 7 d"),
    FeatureSpec("issuer_route_attempts_7d", "issuer x route attempts over 7 d"),
    FeatureSpec("bin_route_rate_7d", "BIN x route smoothed approval rate over 7 d"),
    FeatureSpec("decline_code", "response code of the decline being retried", "DECLINE_CODES"),
    FeatureSpec("decline_visa_category", "Visa category of that decline, NaN for other networks"),
    FeatureSpec("decline_advice_code", "Mastercard advice code of that decline as an integer"),
    FeatureSpec("decline_family_code", "decline family from the payments core", "FAMILIES"),
    FeatureSpec("advice_wait_h", "hours the advice code forbids a retry, 0 if none"),
    FeatureSpec("attempts_so_far", "the payment's attempts up to the decline"),
    FeatureSpec("hours_since_first_decline", "hours from the payment's first decline"),
    FeatureSpec("delay_h", "candidate delay from the decline, hours"),
)
SPECS: Mapping[str, FeatureSpec] = {s.name: s for s in _SPECS}

_REQUEST = (
    *("log_amount_usd", "fx_needed", "months_to_expiry", "attempt_no", "is_retry", "local_hour"),
    *(
        "dow",
        "dom",
        "brand_code",
        "funding_code",
        "tier_code",
        "is_commercial",
        "issuer_country_code",
    ),
    *(
        "merchant_country_code",
        "is_foreign_merchant",
        "ip_mismatch",
        "mcc",
        "channel_code",
        "is_cit",
    ),
    *(
        "cof_type_code",
        "is_initial_cof",
        "network_token",
        "three_ds",
        "challenge",
        "sca_exemption_code",
    ),
    *("cvv_present", "avs_provided", "customer_in_session", "credential_changed"),
)
CARD_FEATURES = (
    *("card_attempts_24h", "card_declines_24h", "card_attempts_7d", "card_declines_7d"),
    *("card_hours_since_approval", "card_amount_ratio", "card_hours_since_nsf"),
    *("card_recoveries", "card_days_since_recovery"),
)
CALENDAR_FEATURES = (
    *("card_local_hour", "card_dow", "card_dom", "card_days_to_month_end"),
    *("payday_dom_gap", "payday_dow_gap"),
)
ROUTE_FEATURES = (
    *("route_code", "route_is_local", "route_rate_7d", "issuer_route_rate_7d"),
    *("issuer_route_attempts_7d", "bin_route_rate_7d"),
)
_DECLINE = (
    *("decline_code", "decline_visa_category", "decline_advice_code", "decline_family_code"),
    "advice_wait_h",
    *("attempts_so_far", "hours_since_first_decline", "delay_h"),
)
APPROVAL_FEATURES: tuple[str, ...] = (
    *_REQUEST,
    *CARD_FEATURES,
    *CALENDAR_FEATURES,
    "merchant_rate_7d",
    *ROUTE_FEATURES,
)
RETRY_FEATURES: tuple[str, ...] = (
    *_DECLINE,
    *ROUTE_FEATURES,
    *CARD_FEATURES,
    *CALENDAR_FEATURES,
    *(
        "log_amount_usd",
        "fx_needed",
        "months_to_expiry",
        "brand_code",
        "funding_code",
        "is_commercial",
    ),
    *(
        "issuer_country_code",
        "mcc",
        "channel_code",
        "cof_type_code",
        "network_token",
        "merchant_rate_7d",
    ),
)


def route_ids(routes: RouteTable) -> tuple[str, ...]:
    """The ROUTES vocabulary: route ids in routes.yaml order."""
    return tuple(r.route_id for r in routes)


def decline_codes(codes: ResponseCodes) -> tuple[str, ...]:
    """The DECLINE_CODES vocabulary: every network's codes in rules.yaml order, first seen wins."""
    return tuple(dict.fromkeys(c for table in codes.tables.values() for c in table))


def smoothed(approved: int, attempts: int, prior: float, weight: float) -> float:
    return (approved + weight * prior) / (attempts + weight)


def days_to_month_end(day: dt.date) -> int:
    nxt = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return (nxt - day).days - 1


@dataclass(frozen=True, slots=True)
class Request:
    """The request side of one attempt: what is known before the issuer answers."""

    attempt_id: int
    payment_id: str
    ts_ms: int  # epoch milliseconds, UTC
    card_key: str  # PAR when present, else PAN hash
    bin8: str
    issuer_id: str  # from the BIN table
    issuer_country: str
    merchant_id: str
    merchant_country: str
    route_id: str  # the route it was (or is proposed to be) sent on
    amount_usd: float
    fx_needed: bool
    months_to_expiry: int
    attempt_no: int
    is_retry: bool
    local_hour: int
    dow: int
    dom: int
    brand: str
    funding: str
    product_tier: str
    is_commercial: bool
    mcc: int
    channel: str
    cit: bool
    cof_type: str
    is_initial_cof: bool
    network_token: bool
    three_ds: bool
    challenge: bool
    sca_exemption: str
    cvv_present: bool
    avs_provided: bool
    customer_in_session: bool
    credential_changed: bool
    ip_country: str | None


@dataclass(frozen=True, slots=True)
class Answer:
    """The issuer's answer to an attempt: known from the attempt's own time on."""

    approved: bool
    response_code: str
    merchant_advice_code: str | None = None


__all__ = [
    "APPROVAL_FEATURES",
    "BRANDS",
    "CALENDAR_FEATURES",
    "CARD_FEATURES",
    "CARD_WINDOWS_MS",
    "CHANNELS",
    "COF_TYPES",
    "COUNTRIES",
    "DAY_MS",
    "EXEMPTIONS",
    "FAMILIES",
    "FUNDING",
    "HOUR_MS",
    "LONGEST_WINDOW_MS",
    "MERCHANT_PRIOR_WEIGHT",
    "PAIR_PRIOR_WEIGHT",
    "PRIOR_RATE",
    "RATE_WINDOW_MS",
    "RESPONSE_SIDE",
    "RETRY_FEATURES",
    "RETRY_HORIZON_MS",
    "ROUTE_FEATURES",
    "ROUTE_PRIOR_WEIGHT",
    "SPECS",
    "TIERS",
    "Answer",
    "FeatureSpec",
    "Request",
    "days_to_month_end",
    "decline_codes",
    "route_ids",
    "smoothed",
]
