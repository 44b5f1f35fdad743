"""The decision core: an authorization in, routing and retry advice out.

One pass through the micro-batcher: the approval model scores one row per candidate route, and,
for a retry consultation, the retry model one row per candidate delay, concurrently. The payments
core prices each route, and the guardrail filters every reattempt before it can be advised. When
a model cannot answer within its share of the deadline (or is not loaded, or a feature is
unavailable) the incumbent rules answer instead, and the decision says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from forestgate import errors
from forestgate.payments.action import Action, ActionKind
from forestgate.payments.features import Answer, Request
from forestgate.payments.guardrail import Attempt, History, Rules, check
from forestgate.payments.routetable import RouteTable
from forestgate.server.decisions.advice import (
    Advice,
    Consultation,
    Scored,
    advise,
    candidate_actions,
)
from forestgate.server.decisions.authorization import Authorization, PastDecline
from forestgate.server.decisions.features import decline_request, feature_request
from forestgate.server.decisions.incumbent import incumbent_retry, incumbent_route
from forestgate.server.decisions.models import DecisionModels
from forestgate.server.decisions.reference_data import ReferenceData
from forestgate.server.decisions.state import DecisionState, SeenAttempt
from forestgate.server.decisions.value import Economics, RoutePrice, approval_value
from forestgate.server.scoring import ScoringCore

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]
# Errors after which the incumbent answers: the call itself was fine, the models could not help.
FALLBACK_ERRORS = (
    errors.NotFound, errors.Unavailable, errors.DeadlineExpired, errors.Overloaded,
    errors.BundleError,
)  # fmt: skip


class FeaturesUnavailable(errors.Unavailable):
    """The online state cannot give a feature this call needs (a decline it never observed)."""


@dataclass(frozen=True, slots=True)
class RouteResult:
    route_id: str
    p_approve: float  # NaN when the incumbent answered
    net_value_minor: int
    price: RoutePrice


@dataclass(frozen=True, slots=True)
class Decision:
    authorization_id: str
    chosen_route: str
    routes: tuple[RouteResult, ...]  # best first
    retry: Advice | None
    models: tuple[tuple[str, str], ...]
    fallback_reason: str = ""  # empty: the models answered


@dataclass(frozen=True, slots=True)
class Outcome:
    authorization_id: str
    approved: bool
    response_code: str
    merchant_advice_code: str | None
    route_id: str  # empty: the route Score chose
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class DecisionConfig:
    economics: Economics
    model_share: float  # of the call's remaining deadline the models may use
    budget_us: int  # the models' budget when the call has no deadline


class DecisionCore:
    def __init__(
        self,
        scoring: ScoringCore,
        *,
        models: DecisionModels,
        state: DecisionState,
        routes: RouteTable,
        rules: Rules,
        config: DecisionConfig,
    ) -> None:
        self.scoring = scoring
        self.models = models
        self.state = state
        self.routes = routes
        self.rules = rules
        self.config = config
        self.fallbacks: dict[str, int] = {}  # reason -> count, read by the metrics collector

    def prepare(self) -> bool:
        """Start the online state from the approval model's reference data, if it is loaded
        (else the first Score does); whether decisions can be served now."""
        try:
            self.state.start(self.models.reference_data().utc_offset_s)
        except (errors.Unavailable, errors.NotFound, errors.BundleError) as exc:
            log.warning("decisions are not ready: %s", exc)
            return False
        return True

    async def score(
        self, auth: Authorization, deadline_ns: int | None = None, trace: object = None
    ) -> Decision:
        self.scoring.readiness.check()
        world = self.models.reference_data()
        self.state.start(world.utc_offset_s)
        if auth.amount.currency not in world.usd_per_unit:
            raise errors.InvalidInput(
                f"amount.currency: {auth.amount.currency} has no exchange rate on this server"
            )
        decline = auth.declines[-1] if auth.advise_retry else None
        priced = auth.routes if decline is None else (*auth.routes, decline.route_id)
        prices = self.models.pricing().routes(auth, tuple(dict.fromkeys(priced)))
        seen = self.state.seen(auth.id)
        if seen is not None and seen.reported:
            raise errors.InvalidInput(
                f"authorization_id: {auth.id!r} was already reported; a new attempt needs a new id"
            )
        request = feature_request(auth, world, attempt_id=self.state.next_attempt_id())
        history = self._history(auth, world)
        try:
            decision = await self._modelled(
                auth, request=request, decline=decline, history=history, prices=prices,
                deadline_ns=self._budget(deadline_ns), trace=trace,
            )  # fmt: skip
        except FALLBACK_ERRORS as exc:
            decision = self._incumbent(auth, history, prices, _reason(exc))
        self._remember(auth, request, decision.chosen_route)
        return decision

    def report(self, outcome: Outcome) -> bool:
        """Record the issuer's answer; NotFound for an id Score never decided (or forgot)."""
        seen = self.state.seen(outcome.authorization_id)
        if seen is None:
            raise errors.NotFound(
                f"authorization_id: {outcome.authorization_id!r} is not an attempt this server "
                "scored (or it is older than the attempts it keeps)"
            )
        answer = Answer(outcome.approved, outcome.response_code, outcome.merchant_advice_code)
        route = outcome.route_id or seen.request.route_id
        if route not in self.routes.routes:
            raise errors.InvalidInput(f"route_id: unknown route {route!r}")
        return self.state.report(outcome.authorization_id, answer, route, outcome.at)

    async def _modelled(
        self,
        auth: Authorization,
        *,
        request: Request,
        decline: PastDecline | None,
        history: History,
        prices: Mapping[str, RoutePrice],
        deadline_ns: int,
        trace: object,
    ) -> Decision:
        try:
            rows = self.state.approval_rows(request, auth.routes)
            retry_job = None if decline is None else self._retry_rows(auth, decline)
        except errors.InvalidInput as exc:
            raise FeaturesUnavailable(str(exc)) from exc
        approval_call = self.scoring.probabilities(self.models.approval, rows, deadline_ns, trace)
        if retry_job is None:
            model, p = await approval_call
            retry_model, p_retry = None, np.zeros(0, np.float32)
        else:
            retry_call = self.scoring.probabilities(
                self.models.retry, retry_job[1], deadline_ns, trace
            )
            (model, p), (retry_model, p_retry) = await asyncio.gather(approval_call, retry_call)
        p_now = {r: float(v) for r, v in zip(auth.routes, p, strict=True)}
        value = approval_value(auth, self.config.economics)
        ranked = _ranked(p_now, prices, value)
        advice = None
        if decline is not None and retry_job is not None:
            advice = self._advice(
                auth, history=history, candidates=retry_job[0], p_now=p_now, p_retry=p_retry,
                prices=prices, value=value,
            )  # fmt: skip
        versions = [(model.name, model.version)]
        if retry_model is not None:
            versions.append((retry_model.name, retry_model.version))
        return Decision(auth.id, ranked[0].route_id, ranked, advice, tuple(versions))

    def _retry_rows(
        self, auth: Authorization, decline: PastDecline
    ) -> tuple[list[tuple[Action, int]], F32]:
        """The candidate reattempts and the retry model's rows for the delayed ones."""
        now = auth.at
        candidates = candidate_actions(auth, decline, now, self.models.retry_delays_s())
        declined = self._decline_features(auth, decline)
        declined_at_s = decline.ts_ms // 1000
        pairs = [
            (int(a.at.timestamp()) - declined_at_s, a.route)
            for a, _ in candidates
            if a.kind is ActionKind.RETRY
        ]
        rows = self.state.retry_rows(declined, pairs) if pairs else np.zeros((0, 0), np.float32)
        return candidates, rows

    def _advice(
        self,
        auth: Authorization,
        *,
        history: History,
        candidates: Sequence[tuple[Action, int]],
        p_now: Mapping[str, float],
        p_retry: F32,
        prices: Mapping[str, RoutePrice],
        value: int,
    ) -> Advice:
        now = auth.at
        scored = []
        retry_p = iter(p_retry.tolist())
        for action, delay_s in candidates:
            p = next(retry_p) if action.kind is ActionKind.RETRY else p_now[action.route]
            verdict = check(action, history, self.rules, now)
            net = prices[action.route].net(p, value, delay_s)
            scored.append(Scored(action, p, net, verdict))
        consultation = Consultation(auth, history, self.rules, now, p_now, prices, value)
        return advise(scored, consultation)

    def _incumbent(
        self,
        auth: Authorization,
        history: History,
        prices: Mapping[str, RoutePrice],
        reason: str,
    ) -> Decision:
        self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1
        order = incumbent_route(auth, self.routes, prices)
        routes = tuple(RouteResult(r, float("nan"), 0, prices[r]) for r in order)
        advice = incumbent_retry(auth, history, self.rules, auth.at) if auth.advise_retry else None
        return Decision(auth.id, order[0], routes, advice, (), reason)

    def _budget(self, deadline_ns: int | None) -> int:
        now = time.monotonic_ns()
        if deadline_ns is None:
            return now + self.config.budget_us * 1000
        return now + int(max(0, deadline_ns - now) * self.config.model_share)

    def _history(self, auth: Authorization, world: ReferenceData) -> History:
        """The card's attempts at this merchant up to now, with the consultation's declines the
        server has not seen added (the switch knows them; counters must too)."""
        for past in auth.declines:
            self._adopt(auth, past, world)
        now = auth.at
        full = self.state.history(auth.card.card_key, auth.merchant.id)
        return History(
            full.card_key, full.merchant_id, tuple(a for a in full.attempts if a.at <= now)
        )

    def _adopt(self, auth: Authorization, past: PastDecline, world: ReferenceData) -> None:
        """Record a decline the consultation names, unless its outcome is already known: the
        switch knows it, so the counters must too. One Score never saw is remembered first."""
        key = _decline_key(auth, past)
        seen = self.state.seen(key)
        if seen is None:
            request = decline_request(auth, past, world, attempt_id=self.state.next_attempt_id())
            self.state.remember(key, SeenAttempt(request, _attempt(auth, request)))
        elif seen.reported:
            return
        at = dt.datetime.fromtimestamp(past.ts_ms / 1000, dt.UTC)
        answer = Answer(False, past.response_code, past.merchant_advice_code)
        self.state.report(key, answer, past.route_id, at)

    def _decline_features(self, auth: Authorization, decline: PastDecline) -> Request:
        """The features request of the decline to retry (recorded by `_history`)."""
        seen = self.state.seen(_decline_key(auth, decline))
        if seen is None:
            raise FeaturesUnavailable(f"decline {decline.authorization_id!r} was forgotten")
        return seen.request

    def _remember(self, auth: Authorization, request: Request, route: str) -> None:
        request = dataclasses.replace(request, route_id=route)
        self.state.remember(auth.id, SeenAttempt(request, _attempt(auth, request)))


def _decline_key(auth: Authorization, decline: PastDecline) -> str:
    """The id a past decline is remembered by: the switch's, or one made from its payment and
    time when ForestGate never scored it."""
    return decline.authorization_id or f"{auth.payment_id}#{decline.ts_ms}"


def _ranked(
    p_now: Mapping[str, float], prices: Mapping[str, RoutePrice], value: int
) -> tuple[RouteResult, ...]:
    results = [RouteResult(r, p, prices[r].net(p, value), prices[r]) for r, p in p_now.items()]
    return tuple(sorted(results, key=lambda v: (-v.net_value_minor, v.route_id)))


def _attempt(auth: Authorization, request: Request) -> Attempt:
    return Attempt(
        at=dt.datetime.fromtimestamp(request.ts_ms / 1000, dt.UTC),
        card_key=auth.card.card_key, merchant_id=auth.merchant.id,
        amount_minor=auth.amount.amount_minor, currency=auth.amount.currency,
        network=auth.card.brand, response_code="", merchant_advice_code=None, approved=False,
        route=request.route_id, card_present=auth.card_present, is_mit=not auth.cit,
        issuer_country=auth.card.issuer_country, credential_changed=request.credential_changed,
        three_ds=auth.three_ds, payment_id=auth.payment_id,
    )  # fmt: skip


def _reason(exc: errors.ForestGateError) -> str:
    reasons: dict[type[errors.ForestGateError], str] = {
        errors.DeadlineExpired: "deadline",
        errors.Overloaded: "overloaded",
        errors.NotFound: "model_not_loaded",
        errors.BundleError: "model_not_loaded",
        FeaturesUnavailable: "features",
    }
    return reasons.get(type(exc), "unavailable")


__all__ = ["Decision", "DecisionConfig", "DecisionCore", "Outcome", "RouteResult"]
