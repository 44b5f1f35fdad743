"""The model features in one import: their definitions (featurespec), the builder of feature rows
(vectors) and the online reference state (online) that the SQL extraction in training/sql is
tested against and the decision API computes from a live stream of attempts.

Point-in-time rule: a feature of an attempt at time t sees only attempts strictly before it in
(ts, attempt_id) order, each with its answer (outcomes are known at their own time). Retry features
are taken at the decline being retried: the decline and everything before it, nothing after.
Windows "24 h" and "7 d" hold the earlier attempts with ts > anchor - window. Response-side fields
of the attempt being scored are never inputs (``RESPONSE_SIDE``).
"""

from __future__ import annotations

from forestgate.payments.featurespec import (
    APPROVAL_FEATURES,
    BRANDS,
    CALENDAR_FEATURES,
    CARD_FEATURES,
    CARD_WINDOWS_MS,
    CHANNELS,
    COF_TYPES,
    COUNTRIES,
    DAY_MS,
    EXEMPTIONS,
    FAMILIES,
    FUNDING,
    HOUR_MS,
    LONGEST_WINDOW_MS,
    MERCHANT_PRIOR_WEIGHT,
    PAIR_PRIOR_WEIGHT,
    PRIOR_RATE,
    RATE_WINDOW_MS,
    RESPONSE_SIDE,
    RETRY_FEATURES,
    RETRY_HORIZON_MS,
    ROUTE_FEATURES,
    ROUTE_PRIOR_WEIGHT,
    SPECS,
    TIERS,
    Answer,
    FeatureSpec,
    Request,
    days_to_month_end,
    decline_codes,
    route_ids,
    smoothed,
)
from forestgate.payments.online import FeatureState
from forestgate.payments.vectors import F32, FeatureBuilder

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
    "F32",
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
    "FeatureBuilder",
    "FeatureSpec",
    "FeatureState",
    "Request",
    "days_to_month_end",
    "decline_codes",
    "route_ids",
    "smoothed",
]
