"""The feature builder: one request plus the counts an online state holds for it (counts.py), as
float32 rows of APPROVAL_FEATURES or RETRY_FEATURES.

Every online state (the in-process ``FeatureState``, the server's Redis store) reads its counts
its own way and hands them here, so the arithmetic of the definitions lives in one place.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from forestgate.payments.codes import Family, ResponseCodes
from forestgate.payments.counts import CardCounts, Counts, DeclineRecord, Outcome, RouteCounts
from forestgate.payments.featurespec import (
    APPROVAL_FEATURES,
    BRANDS,
    CALENDAR_FEATURES,
    CARD_FEATURES,
    CHANNELS,
    COF_TYPES,
    COUNTRIES,
    DAY_MS,
    EXEMPTIONS,
    FAMILIES,
    FUNDING,
    HOUR_MS,
    MERCHANT_PRIOR_WEIGHT,
    PAIR_PRIOR_WEIGHT,
    PRIOR_RATE,
    RETRY_FEATURES,
    ROUTE_FEATURES,
    ROUTE_PRIOR_WEIGHT,
    TIERS,
    Answer,
    Request,
    days_to_month_end,
    decline_codes,
    route_ids,
    smoothed,
)
from forestgate.payments.routetable import RouteTable

F32 = npt.NDArray[np.float32]
NAN = math.nan


class FeatureBuilder:
    """Feature rows from a request and its counts; holds the vocabularies and the calendar."""

    def __init__(
        self, *, routes: RouteTable, codes: ResponseCodes, utc_offset_s: Mapping[str, int]
    ) -> None:
        self._codes = codes
        self._offset_s = dict(utc_offset_s)
        vocabularies = {
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
        }
        # Each value's code as the float the rows hold, converted here rather than per row.
        self._vocab = {n: {v: float(i) for i, v in enumerate(vs)} for n, vs in vocabularies.items()}
        # What a row needs of each route besides its counts, looked up once, not per row.
        self._route_facts = {
            r: (self._index("ROUTES", r), routes.routes[r].local_countries) for r in routes.routes
        }

    def outcome(self, request: Request, answer: Answer) -> Outcome:
        day = dt.datetime.fromtimestamp(request.ts_ms / 1000, dt.UTC).date()
        info = self._codes.classify(request.brand, answer.response_code, day)
        nsf = not answer.approved and info.family is Family.INSUFFICIENT_FUNDS
        return Outcome(info.family, info.visa_category, nsf)

    def approval_rows(
        self,
        request: Request,
        route_ids: Sequence[str],
        *,
        card: CardCounts,
        routes: Sequence[RouteCounts],
        merchant: Counts,
    ) -> F32:
        """[len(route_ids), len(APPROVAL_FEATURES)]: ``request`` at its own time on each route;
        ``routes`` holds each route's counts, in the same order."""
        if not route_ids:
            return np.empty((0, len(APPROVAL_FEATURES)), np.float32)
        shared = self._request(request) | self._card(request, card, eval_ms=request.ts_ms)
        shared["merchant_rate_7d"] = _merchant_rate(merchant)
        # What all routes share is built once; only the route columns differ per row.
        out = _rows(APPROVAL_FEATURES, shared, len(route_ids))
        out[:, _APPROVAL_ROUTE] = [
            self._route(request, route_id, counts)
            for route_id, counts in zip(route_ids, routes, strict=True)
        ]
        return out

    def retry_rows(
        self,
        decline: Request,
        candidates: Sequence[tuple[int, str]],
        *,
        record: DeclineRecord,
        card: CardCounts,
        routes: Sequence[RouteCounts],
        merchant: Counts,
    ) -> F32:
        """[len(candidates), len(RETRY_FEATURES)]: retrying ``decline`` after each candidate's
        delay_s on its route_id, with the counts as of the decline."""
        if not candidates:
            return np.empty((0, len(RETRY_FEATURES)), np.float32)
        shared = self._request(decline) | self._decline(record)
        shared["hours_since_first_decline"] = (
            NAN
            if record.first_decline_ms is None
            else (decline.ts_ms - record.first_decline_ms) / HOUR_MS
        )
        shared["merchant_rate_7d"] = _merchant_rate(merchant)
        out = _rows(RETRY_FEATURES, shared, len(candidates))
        timed: dict[int, list[float]] = {}  # the card's clock-dependent columns, per delay
        for delay_s, _ in candidates:
            if delay_s not in timed:
                at_send = self._card(decline, card, eval_ms=decline.ts_ms + delay_s * 1000)
                timed[delay_s] = [*(at_send[n] for n in _TIMED), delay_s / 3600]
        out[:, _RETRY_TIMED] = [timed[delay_s] for delay_s, _ in candidates]
        out[:, _RETRY_ROUTE] = [
            self._route(decline, route_id, counts)
            for (_, route_id), counts in zip(candidates, routes, strict=True)
        ]
        return out

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

    def _decline(self, d: DeclineRecord) -> dict[str, float]:
        advice = self._codes.merchant_advice(d.advice) if d.advice else None
        wait = advice.retry_after if advice is not None and advice.retry_after else None
        return {
            "decline_code": self._index("DECLINE_CODES", d.code),
            "decline_visa_category": math.nan
            if d.visa_category is None
            else float(d.visa_category),
            "decline_advice_code": float(int(d.advice))
            if d.advice and d.advice.isdigit()
            else math.nan,
            "decline_family_code": self._index("FAMILIES", d.family.value),
            "advice_wait_h": 0.0 if wait is None else wait.total_seconds() / 3600,
            "attempts_so_far": float(d.attempts_so_far),
        }

    def _card(self, r: Request, card: CardCounts, *, eval_ms: int) -> dict[str, float]:
        mean = card.approved_usd / card.approvals if card.approvals else math.nan
        out = {
            "card_attempts_24h": float(card.attempts_24h),
            "card_declines_24h": float(card.declines_24h),
            "card_attempts_7d": float(card.attempts_7d),
            "card_declines_7d": float(card.declines_7d),
            "card_hours_since_approval": _since(eval_ms, card.last_approval_ms, HOUR_MS),
            "card_amount_ratio": r.amount_usd / mean if mean > 0 else math.nan,
            "card_hours_since_nsf": _since(eval_ms, card.last_nsf_ms, HOUR_MS),
            "card_recoveries": float(card.recoveries),
            "card_days_since_recovery": _since(eval_ms, card.last_recovery_ms, DAY_MS),
        }
        offset = self._offset_s.get(r.issuer_country)
        cal = dict.fromkeys(CALENDAR_FEATURES, math.nan)
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
        return out | cal

    def _route(self, r: Request, route_id: str, counts: RouteCounts) -> list[float]:
        """The ROUTE_FEATURES of ``r`` on ``route_id``, in that order."""
        (n_r, a_r), (n_ir, a_ir), (n_br, a_br) = counts.route, counts.issuer_route, counts.bin_route
        route_rate = smoothed(a_r, n_r, PRIOR_RATE, ROUTE_PRIOR_WEIGHT)
        issuer_rate = smoothed(a_ir, n_ir, route_rate, PAIR_PRIOR_WEIGHT)
        code, local_countries = self._route_facts.get(route_id, (NAN, None))
        return [
            code,
            NAN if local_countries is None else float(r.issuer_country in local_countries),
            route_rate,
            issuer_rate,
            float(n_ir),
            smoothed(a_br, n_br, issuer_rate, PAIR_PRIOR_WEIGHT),
        ]

    def _index(self, vocabulary: str, value: str) -> float:
        return self._vocab[vocabulary].get(value, NAN)


def _merchant_rate(merchant: Counts) -> float:
    attempts, approved = merchant
    return smoothed(approved, attempts, PRIOR_RATE, MERCHANT_PRIOR_WEIGHT)


def _rows(names: tuple[str, ...], values: Mapping[str, float], n: int) -> F32:
    """``n`` rows of ``values`` in the order of ``names``, NaN for the columns filled in per
    row (an empty array filled by broadcasting: np.tile costs more than the copy here)."""
    out = np.empty((n, len(names)), np.float32)
    out[:] = [values.get(name, NAN) for name in names]
    return out


def _columns(names: tuple[str, ...], subset: Sequence[str]) -> list[int]:
    return [names.index(n) for n in subset]


def _block(names: tuple[str, ...], subset: Sequence[str]) -> slice:
    """Where ``subset`` sits in ``names``, in its order, as a slice: assigning rows to a slice
    costs half what the same columns by index do, paid once per route row."""
    start = names.index(subset[0])
    if list(names[start : start + len(subset)]) != list(subset):
        raise AssertionError(f"{subset} are not adjacent columns")
    return slice(start, start + len(subset))


_TIMED = (*CARD_FEATURES, *CALENDAR_FEATURES)
_APPROVAL_ROUTE = _block(APPROVAL_FEATURES, ROUTE_FEATURES)
_RETRY_ROUTE = _block(RETRY_FEATURES, ROUTE_FEATURES)
_RETRY_TIMED = _columns(RETRY_FEATURES, (*_TIMED, "delay_h"))


def _since(now_ms: int, then_ms: int | None, unit_ms: int) -> float:
    return math.nan if then_ms is None else (now_ms - then_ms) / unit_ms


def _local(ts_ms: int, offset_s: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ts_ms + offset_s * 1000)


__all__ = ["F32", "FeatureBuilder"]
