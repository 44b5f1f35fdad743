"""The ground truth an attempt is resolved against: approved or declined, with the response code
and advice code the issuer would send, for any route and any time a policy picks.

A first attempt uses the generator's true probability on the chosen route (truth.parquet), with
a uniform coupled to the logged answer, so the logged route gives exactly the logged answer and
every route keeps its true marginal. A reattempt uses the truth of a logged reattempt of the
same payment sent at about the same time when there is one, else the log's own recovery rate for
the decline family and delay, scaled by the first attempt's true route ratio. Decline codes come
from the log where it answered the same question, else from the log's decline mix of that
issuer (or card brand). docs/evaluation.md, "Simulation", states what this approximates.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from forestgate.clients.simulate.dataset import LoggedAttempt, Payment
from forestgate.payments.codes import ResponseCodes

# The generator's reasons whose code does not depend on the route: the same card state, balance
# or risk draw gives the same answer elsewhere. Technical and SCA declines depend on the route.
ROUTE_INDEPENDENT = frozenset(
    {"hard", "data", "insufficient_funds", "generic", "suspected_fraud", "restriction", "limit"}
)
# Code families (forestgate.payments) a route can cause: a route declines a payment the logged
# route approved only for these, never for a card state, its data or its funds.
ROUTE_DEPENDENT = frozenset({"technical", "sca", "generic", "suspected_fraud"})
# Delays the log's reattempts cluster at (cascades, customer retries and the retry grid).
DELAY_BUCKETS_S = (2, 300, 3_600, 6 * 3_600, 86_400, 2 * 86_400, 3 * 86_400, 5 * 86_400, 7 * 86_400)
MIN_SAMPLES = 30  # fewer logged reattempts in a cell: fall back to a coarser cell
SAME_TIME_S = 300  # a logged reattempt this close (or within a quarter of the delay) is reused


@dataclass(frozen=True, slots=True)
class Draws:
    """The uniforms of one attempt of one payment: the same for every policy (common random
    numbers), so the two arms differ by their decisions, not by luck."""

    approve: float
    code: float
    step_up: float

    @classmethod
    def of(cls, seed: int, payment_index: int, attempt_no: int) -> Draws:
        u = np.random.default_rng([seed, payment_index, attempt_no]).random(3)
        return cls(float(u[0]), float(u[1]), float(u[2]))


@dataclass(frozen=True, slots=True)
class Answer:
    approved: bool
    response_code: str
    merchant_advice_code: str  # "" when none
    p_true: float  # the probability the answer was drawn with


@dataclass(frozen=True, slots=True)
class Decline:
    """The decline a reattempt follows."""

    at: dt.datetime
    route_id: str
    response_code: str
    family: str  # forestgate.payments.codes.Family value of the code


class Mix:
    """An empirical distribution of (code, advice code) pairs under nested keys; a draw uses the
    finest key with at least MIN_SAMPLES rows."""

    def __init__(self) -> None:
        self._counts: dict[Hashable, Counter[tuple[str, str]]] = {}

    def add(self, keys: Iterable[Hashable], pair: tuple[str, str]) -> None:
        for key in keys:
            self._counts.setdefault(key, Counter())[pair] += 1

    def draw(self, keys: Iterable[Hashable], u: float) -> tuple[str, str]:
        chosen: Counter[tuple[str, str]] | None = None
        for key in keys:
            counts = self._counts.get(key)
            if counts:
                chosen = counts
                if counts.total() >= MIN_SAMPLES:
                    break
        if chosen is None:
            return ("05", "")  # no decline of the kind in the log: the generic refusal
        pairs = sorted(chosen)
        weights = np.cumsum([chosen[p] for p in pairs], dtype=np.float64)
        return pairs[int(np.searchsorted(weights, u * weights[-1], side="right"))]


def delay_bucket(delay_s: float) -> int:
    """Index of the DELAY_BUCKETS_S entry nearest ``delay_s`` on a log scale."""
    x = math.log(max(delay_s, 1.0))
    return min(range(len(DELAY_BUCKETS_S)), key=lambda i: abs(math.log(DELAY_BUCKETS_S[i]) - x))


class GroundTruth:
    """Resolves attempts of held-out payments; built once from the whole log."""

    def __init__(self, attempts: pa.Table, issuers: dict[str, str], mac_routes: set[str]) -> None:
        self.codes = ResponseCodes.load()
        self.mac_routes = mac_routes
        self._families: dict[tuple[str, str], str] = {}
        self.first_mix = Mix()
        self.retry_mix = Mix()
        self._recovered: dict[Hashable, list[int]] = {}
        self._learn(attempts, issuers)

    def family(self, brand: str, code: str, on: dt.date) -> str:
        key = (brand, code)
        if key not in self._families:
            self._families[key] = self.codes.classify(brand, code, on).family.value
        return self._families[key]

    def _learn(self, attempts: pa.Table, issuers: dict[str, str]) -> None:
        cols = ["attempt_id", "parent_attempt_id", "retry_kind", "ts_utc", "brand", "bin8"]
        cols += ["credential_changed", "approved", "response_code", "merchant_advice_code"]
        rows = attempts.select(cols)
        by_id: dict[int, dict[str, object]] = {}
        for r in rows.to_pylist():
            by_id[int(r["attempt_id"])] = r
            pair = (str(r["response_code"]), r["merchant_advice_code"] or "")
            parent = r["parent_attempt_id"]
            if parent is None:
                code_family = self.family(str(r["brand"]), pair[0], r["ts_utc"].date())
                if not r["approved"] and code_family in ROUTE_DEPENDENT:
                    issuer = issuers.get(str(r["bin8"]), "")
                    self.first_mix.add(((issuer, r["brand"]), (r["brand"],)), pair)
                continue
            if r["retry_kind"] == "new_card" or int(parent) not in by_id:
                continue
            before = by_id[int(parent)]
            fam = self.family(
                str(before["brand"]), str(before["response_code"]), r["ts_utc"].date()
            )
            delay = (r["ts_utc"] - before["ts_utc"]).total_seconds()
            mode = _mode(r["retry_kind"] == "cit_3ds", bool(r["credential_changed"]))
            for key in self._cells(fam, mode, delay):
                self._recovered.setdefault(key, [0, 0])[bool(r["approved"])] += 1
            if not r["approved"]:
                self.retry_mix.add(((fam, r["brand"]), (r["brand"],)), pair)

    @staticmethod
    def _cells(family: str, mode: str, delay_s: float) -> tuple[Hashable, ...]:
        """Recovery cells, finest first, never mixing modes: a 3DS step-up or re-entered card
        data recovers unlike a plain reattempt."""
        return ((family, mode, delay_bucket(delay_s)), (family, mode), (mode,))

    def recovery_rate(self, family: str, delay_s: float, *, step_up: bool = False) -> float:
        """The log's approval share of reattempts after a ``family`` decline at about
        ``delay_s``, plain or a 3DS step-up, from the finest cell with MIN_SAMPLES reattempts
        (the simulator never changes card data: no account updater, no re-entry)."""
        cells = self._cells(family, _mode(step_up, credential_changed=False), delay_s)
        for key in cells:
            declined, approved = self._recovered.get(key, [0, 0])
            if declined + approved >= MIN_SAMPLES or key == cells[-1]:
                return approved / max(declined + approved, 1)
        raise AssertionError("unreachable")

    def first(self, payment: Payment, route_id: str, draws: Draws) -> Answer:
        """The first attempt of ``payment`` sent on ``route_id``."""
        logged = payment.first
        p_route = logged.p_by_route.get(route_id, 0.0)
        p_logged = logged.p_by_route.get(logged.route_id, 0.0)
        # Coupled to the log: U < p_logged exactly when the logged attempt was approved.
        u = (
            draws.approve * p_logged
            if logged.approved
            else p_logged + draws.approve * (1 - p_logged)
        )
        if u < p_route:
            return Answer(True, "00", "", p_route)
        if not logged.approved and (
            route_id == logged.route_id or logged.true_family in ROUTE_INDEPENDENT
        ):
            return self._answer(
                logged.response_code, logged.merchant_advice_code, route_id, p_route
            )
        keys = ((payment.issuer_id, payment.row["brand"]), (payment.row["brand"],))
        code, mac = self.first_mix.draw(keys, draws.code)
        return self._answer(code, mac, route_id, p_route)

    def reattempt(
        self,
        payment: Payment,
        route_id: str,
        at: dt.datetime,
        after: Decline,
        draws: Draws,
        *,
        step_up: bool = False,
    ) -> Answer:
        """A reattempt of ``payment`` on ``route_id`` at ``at`` following the decline ``after``;
        ``step_up``: authenticated with 3DS by the customer in session."""
        delay = (at - after.at).total_seconds()
        same_kind = [a for a in payment.reattempts if a.step_up == step_up]
        twin = _same_time(same_kind, at, delay)
        if twin is not None and route_id in twin.p_by_route:
            p = twin.p_by_route[route_id]
        else:
            p = self._modelled(payment.first, route_id, after, delay, step_up=step_up)
        if draws.approve < p:
            return Answer(True, "00", "", p)
        if twin is not None and twin.route_id == route_id and not twin.approved:
            return self._answer(twin.response_code, twin.merchant_advice_code, route_id, p)
        brand = payment.row["brand"]
        code, mac = self.retry_mix.draw(((after.family, brand), (brand,)), draws.code)
        return self._answer(code, mac, route_id, p)

    def _modelled(
        self, first: LoggedAttempt, route_id: str, after: Decline, delay: float, *, step_up: bool
    ) -> float:
        """Recovery rate x the first attempt's true ratio between the new and the declined
        route: a card no route would approve (a hard state, a blocked pair) stays declined."""
        p_new = first.p_by_route.get(route_id, 0.0)
        p_old = first.p_by_route.get(after.route_id, 0.0)
        if p_new <= 0.0:
            return 0.0
        ratio = p_new / p_old if p_old > 0 else 1.0
        return min(1.0, self.recovery_rate(after.family, delay, step_up=step_up) * ratio)

    def _answer(self, code: str, mac: str, route_id: str, p: float) -> Answer:
        return Answer(False, code, mac if route_id in self.mac_routes else "", p)


def _mode(step_up: bool, credential_changed: bool) -> str:
    return "3ds" if step_up else "changed" if credential_changed else "plain"


def _same_time(
    logged: Iterable[LoggedAttempt], at: dt.datetime, delay_s: float
) -> LoggedAttempt | None:
    """The logged reattempt nearest ``at`` if it is close enough to stand for it."""
    tolerance = max(SAME_TIME_S, 0.25 * delay_s)
    best = min(logged, key=lambda a: abs((a.at - at).total_seconds()), default=None)
    if best is None or abs((best.at - at).total_seconds()) > tolerance:
        return None
    return best
