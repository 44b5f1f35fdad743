"""The model features: the one definition of every feature's name, meaning and encoding, and the
online reference implementation (``FeatureState``) that the SQL extraction in training/sql is
tested against and the decision API computes from a live stream of attempts.

Point-in-time rule: a feature of an attempt at time t sees only attempts strictly before it in
(ts, attempt_id) order, each with its answer (outcomes are known at their own time). Retry features
are taken at the decline being retried: the decline and everything before it, nothing after.
Windows "24 h" and "7 d" hold the earlier attempts with ts > anchor - window. Response-side fields
of the attempt being scored are never inputs (``RESPONSE_SIDE``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from forestgate.errors import InvalidInput
from forestgate.payments.codes import Family, ResponseCodes
from forestgate.payments.routetable import RouteTable

F32 = npt.NDArray[np.float32]

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
_CARD = (
    *("card_attempts_24h", "card_declines_24h", "card_attempts_7d", "card_declines_7d"),
    *("card_hours_since_approval", "card_amount_ratio", "card_hours_since_nsf"),
    *("card_recoveries", "card_days_since_recovery"),
)
_CALENDAR = (
    *("card_local_hour", "card_dow", "card_dom", "card_days_to_month_end"),
    *("payday_dom_gap", "payday_dow_gap"),
)
_ROUTE = (
    *("route_code", "route_is_local", "route_rate_7d", "issuer_route_rate_7d"),
    *("issuer_route_attempts_7d", "bin_route_rate_7d"),
)
_DECLINE = (
    *("decline_code", "decline_visa_category", "decline_advice_code", "decline_family_code"),
    "advice_wait_h",
    *("attempts_so_far", "hours_since_first_decline", "delay_h"),
)
APPROVAL_FEATURES: tuple[str, ...] = (*_REQUEST, *_CARD, *_CALENDAR, "merchant_rate_7d", *_ROUTE)
RETRY_FEATURES: tuple[str, ...] = (
    *_DECLINE,
    *_ROUTE,
    *_CARD,
    *_CALENDAR,
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


class _Window:
    """Timestamps and running counts of one key's attempts, for trailing-window lookups."""

    __slots__ = ("counts", "ts")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.counts: list[int] = []  # running approvals (or declines) through each attempt

    def add(self, ts_ms: int, hit: bool) -> None:
        self.ts.append(ts_ms)
        self.counts.append((self.counts[-1] if self.counts else 0) + int(hit))

    def since(self, lower_ms: int) -> tuple[int, int]:
        """(attempts, hits) with ts > lower_ms."""
        i = bisect.bisect_right(self.ts, lower_ms)
        before = self.counts[i - 1] if i else 0
        total = self.counts[-1] if self.counts else 0
        return len(self.ts) - i, total - before


@dataclass(slots=True)
class _Card:
    declines: _Window = field(default_factory=_Window)
    approvals: int = 0
    approved_usd: float = 0.0
    last_approval_ms: int | None = None
    last_nsf_ms: int | None = None
    last_recovery_ms: int | None = None
    recoveries: int = 0
    last_was_nsf: bool = False


@dataclass(slots=True)
class _Payment:
    attempts: int = 0
    first_decline_ms: int | None = None


@dataclass(frozen=True, slots=True)
class _Decline:
    ts_ms: int
    family: Family
    code: str
    visa_category: int | None
    advice: str | None


class FeatureState:
    """Online feature state: ``observe`` every attempt with its answer in (ts, attempt_id) order;
    ``approval`` and ``retry`` return feature vectors from what was observed so far.

    Memory grows with the history held (per-key timestamps); a long-running server prunes keys
    older than the longest window, which the definitions allow.
    """

    def __init__(
        self,
        *,
        routes: RouteTable,
        codes: ResponseCodes,
        utc_offset_s: Mapping[str, int],
    ) -> None:
        self._routes = routes
        self._codes = codes
        self._offset_s = dict(utc_offset_s)
        self._vocab: dict[str, dict[str, int]] = {
            name: {v: i for i, v in enumerate(values)}
            for name, values in {
                "BRANDS": BRANDS,
                "FUNDING": FUNDING,
                "TIERS": TIERS,
                "CHANNELS": CHANNELS,
                "COF_TYPES": COF_TYPES,
                "EXEMPTIONS": EXEMPTIONS,
                "COUNTRIES": COUNTRIES,
                "FAMILIES": FAMILIES,
                "ROUTES": route_ids(routes),
                "DECLINE_CODES": decline_codes(codes),
            }.items()
        }
        self._cards: dict[str, _Card] = {}
        self._payments: dict[str, _Payment] = {}
        self._rates: dict[tuple[str, ...], _Window] = {}
        self._declines: dict[int, _Decline] = {}
        self._last: tuple[int, int] = (-(2**62), -1)

    def observe(self, request: Request, answer: Answer) -> None:
        """Add one attempt and its answer; attempts must arrive in (ts, attempt_id) order."""
        key = (request.ts_ms, request.attempt_id)
        if key <= self._last:
            raise InvalidInput(f"attempt {request.attempt_id} arrived out of (ts, id) order")
        self._last = key
        info = self._codes.classify(request.brand, answer.response_code, self._date(request.ts_ms))
        nsf = not answer.approved and info.family is Family.INSUFFICIENT_FUNDS
        card = self._cards.setdefault(request.card_key, _Card())
        card.declines.add(request.ts_ms, not answer.approved)
        if answer.approved:
            card.approvals += 1
            card.approved_usd += request.amount_usd
            card.last_approval_ms = request.ts_ms
            if card.last_was_nsf:
                card.recoveries += 1
                card.last_recovery_ms = request.ts_ms
        if nsf:
            card.last_nsf_ms = request.ts_ms
        card.last_was_nsf = nsf
        pay = self._payments.setdefault(request.payment_id, _Payment())
        pay.attempts += 1
        if not answer.approved and pay.first_decline_ms is None:
            pay.first_decline_ms = request.ts_ms
        for k in self._rate_keys(request, request.route_id):
            self._rates.setdefault(k, _Window()).add(request.ts_ms, answer.approved)
        if not answer.approved:
            self._declines[request.attempt_id] = _Decline(
                request.ts_ms,
                info.family,
                answer.response_code,
                info.visa_category,
                answer.merchant_advice_code,
            )

    def approval(self, request: Request, route_id: str | None = None) -> F32:
        """APPROVAL_FEATURES of ``request`` at its own time, sent on ``route_id`` (default: its
        own route); the request itself must not have been observed yet."""
        route = request.route_id if route_id is None else route_id
        values = self._request(request)
        values.update(self._card(request, anchor_ms=request.ts_ms, eval_ms=request.ts_ms))
        values.update(self._route(request, route, anchor_ms=request.ts_ms))
        return self._vector(APPROVAL_FEATURES, values)

    def retry(self, decline: Request, *, delay_s: int, route_id: str) -> F32:
        """RETRY_FEATURES of retrying the observed decline ``decline`` after ``delay_s`` on
        ``route_id``, as of the decline (nothing after it is used)."""
        d = self._declines.get(decline.attempt_id)
        if d is None:
            raise InvalidInput(f"attempt {decline.attempt_id} is not an observed decline")
        send_ms = decline.ts_ms + delay_s * 1000
        values = self._request(decline)
        values.update(self._card(decline, anchor_ms=decline.ts_ms, eval_ms=send_ms))
        values.update(self._route(decline, route_id, anchor_ms=decline.ts_ms))
        pay = self._payments[decline.payment_id]
        advice = self._codes.merchant_advice(d.advice) if d.advice else None
        wait = advice.retry_after if advice is not None and advice.retry_after else None
        first = pay.first_decline_ms
        values.update(
            decline_code=self._index("DECLINE_CODES", d.code),
            decline_visa_category=math.nan if d.visa_category is None else float(d.visa_category),
            decline_advice_code=float(int(d.advice))
            if d.advice and d.advice.isdigit()
            else math.nan,
            decline_family_code=self._index("FAMILIES", d.family.value),
            advice_wait_h=0.0 if wait is None else wait.total_seconds() / 3600,
            attempts_so_far=float(pay.attempts),
            hours_since_first_decline=math.nan
            if first is None
            else (decline.ts_ms - first) / HOUR_MS,
            delay_h=delay_s / 3600,
        )
        return self._vector(RETRY_FEATURES, values)

    def _request(self, r: Request) -> dict[str, float]:
        ip = math.nan if r.ip_country is None else float(r.ip_country != r.issuer_country)
        return {
            "log_amount_usd": math.log(1 + r.amount_usd),
            "fx_needed": float(r.fx_needed),
            "months_to_expiry": float(r.months_to_expiry),
            "attempt_no": float(r.attempt_no),
            "is_retry": float(r.is_retry),
            "local_hour": float(r.local_hour),
            "dow": float(r.dow),
            "dom": float(r.dom),
            "brand_code": self._index("BRANDS", r.brand),
            "funding_code": self._index("FUNDING", r.funding),
            "tier_code": self._index("TIERS", r.product_tier),
            "is_commercial": float(r.is_commercial),
            "issuer_country_code": self._index("COUNTRIES", r.issuer_country),
            "merchant_country_code": self._index("COUNTRIES", r.merchant_country),
            "is_foreign_merchant": float(r.merchant_country != r.issuer_country),
            "ip_mismatch": ip,
            "mcc": float(r.mcc),
            "channel_code": self._index("CHANNELS", r.channel),
            "is_cit": float(r.cit),
            "cof_type_code": self._index("COF_TYPES", r.cof_type),
            "is_initial_cof": float(r.is_initial_cof),
            "network_token": float(r.network_token),
            "three_ds": float(r.three_ds),
            "challenge": float(r.challenge),
            "sca_exemption_code": self._index("EXEMPTIONS", r.sca_exemption),
            "cvv_present": float(r.cvv_present),
            "avs_provided": float(r.avs_provided),
            "customer_in_session": float(r.customer_in_session),
            "credential_changed": float(r.credential_changed),
        }

    def _card(self, r: Request, *, anchor_ms: int, eval_ms: int) -> dict[str, float]:
        card = self._cards.get(r.card_key, _Card())
        n24, d24 = card.declines.since(anchor_ms - CARD_WINDOWS_MS[0])
        n7, d7 = card.declines.since(anchor_ms - CARD_WINDOWS_MS[1])
        mean = card.approved_usd / card.approvals if card.approvals else math.nan
        out = {
            "card_attempts_24h": float(n24),
            "card_declines_24h": float(d24),
            "card_attempts_7d": float(n7),
            "card_declines_7d": float(d7),
            "card_hours_since_approval": _since(eval_ms, card.last_approval_ms, HOUR_MS),
            "card_amount_ratio": r.amount_usd / mean if mean > 0 else math.nan,
            "card_hours_since_nsf": _since(eval_ms, card.last_nsf_ms, HOUR_MS),
            "card_recoveries": float(card.recoveries),
            "card_days_since_recovery": _since(eval_ms, card.last_recovery_ms, DAY_MS),
        }
        offset = self._offset_s.get(r.issuer_country)
        cal = dict.fromkeys(_CALENDAR, math.nan)
        if offset is not None:
            now = _local(eval_ms, offset)
            cal.update(
                card_local_hour=float(now.hour),
                card_dow=float(now.isoweekday()),
                card_dom=float(now.day),
                card_days_to_month_end=float(days_to_month_end(now.date())),
            )
            if card.last_recovery_ms is not None:
                rec = _local(card.last_recovery_ms, offset)
                cal["payday_dom_gap"] = float((now.day - rec.day + 45) % 30 - 15)
                cal["payday_dow_gap"] = float((now.isoweekday() - rec.isoweekday() + 7) % 7)
        out.update(cal)
        return out

    def _route(self, r: Request, route_id: str, *, anchor_ms: int) -> dict[str, float]:
        lower = anchor_ms - RATE_WINDOW_MS
        counts = [
            w.since(lower) if (w := self._rates.get(k)) is not None else (0, 0)
            for k in self._rate_keys(r, route_id)
        ]
        (n_r, a_r), (n_ir, a_ir), (n_br, a_br), (n_m, a_m) = counts
        route_rate = smoothed(a_r, n_r, PRIOR_RATE, ROUTE_PRIOR_WEIGHT)
        issuer_rate = smoothed(a_ir, n_ir, route_rate, PAIR_PRIOR_WEIGHT)
        route = self._routes.routes.get(route_id)
        return {
            "merchant_rate_7d": smoothed(a_m, n_m, PRIOR_RATE, MERCHANT_PRIOR_WEIGHT),
            "route_code": self._index("ROUTES", route_id),
            "route_is_local": math.nan
            if route is None
            else float(r.issuer_country in route.local_countries),
            "route_rate_7d": route_rate,
            "issuer_route_rate_7d": issuer_rate,
            "issuer_route_attempts_7d": float(n_ir),
            "bin_route_rate_7d": smoothed(a_br, n_br, issuer_rate, PAIR_PRIOR_WEIGHT),
        }

    @staticmethod
    def _rate_keys(r: Request, route_id: str) -> tuple[tuple[str, ...], ...]:
        return (
            ("route", route_id),
            ("issuer_route", r.issuer_id, route_id),
            ("bin_route", r.bin8, route_id),
            ("merchant", r.merchant_id),
        )

    def _index(self, vocabulary: str, value: str) -> float:
        i = self._vocab[vocabulary].get(value)
        return math.nan if i is None else float(i)

    def _date(self, ts_ms: int) -> dt.date:
        return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).date()

    @staticmethod
    def _vector(names: tuple[str, ...], values: Mapping[str, float]) -> F32:
        return np.array([values[n] for n in names], dtype=np.float64).astype(np.float32)


def _since(now_ms: int, then_ms: int | None, unit_ms: int) -> float:
    return math.nan if then_ms is None else (now_ms - then_ms) / unit_ms


def _local(ts_ms: int, offset_s: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ts_ms + offset_s * 1000)


__all__ = [
    "APPROVAL_FEATURES",
    "RESPONSE_SIDE",
    "RETRY_FEATURES",
    "SPECS",
    "Answer",
    "FeatureSpec",
    "FeatureState",
    "Request",
    "decline_codes",
    "route_ids",
]
