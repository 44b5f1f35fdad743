"""The decision core: an authorization in, routing and retry advice out.

One pass through the micro-batcher: the approval model scores one row per candidate route, and,
for a retry consultation, the retry model one row per candidate delay, concurrently. The payments
core prices each route, and the guardrail filters every reattempt before it can be advised. When
a model cannot answer within its share of the deadline (or is not loaded, or a feature is
unavailable) the incumbent rules answer instead, and the decision says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from forestgate import errors
from forestgate.payments.action import Action, ActionKind
from forestgate.payments.featurespec import Answer, Request
from forestgate.payments.guardrail import Verdict
from forestgate.payments.routetable import RouteTable
from forestgate.server.decisions.advice import (
    Advice,
    Consultation,
    Scored,
    advise,
    candidate_actions,
    reattempt,
)
from forestgate.server.decisions.authorization import Authorization, PastDecline
from forestgate.server.decisions.decision import (
    FALLBACK_ERRORS,
    Decision,
    DecisionConfig,
    FeaturesUnavailable,
    Outcome,
    RouteResult,
    fallback_reason,
    ranked,
)
from forestgate.server.decisions.features import decline_request, feature_request
from forestgate.server.decisions.incumbent import (
    incumbent_advice,
    incumbent_retry,
    incumbent_route,
)
from forestgate.server.decisions.models import DecisionModels
from forestgate.server.decisions.records import SeenAttempt, attempt_record
from forestgate.server.decisions.reference_data import ReferenceData
from forestgate.server.decisions.state import DecisionState, StateOpener
from forestgate.server.decisions.value import RoutePrice, approval_value
from forestgate.server.scoring import ScoringCore

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]


class DecisionCore:
    def __init__(
        self,
        scoring: ScoringCore,
        *,
        models: DecisionModels,
        open_state: StateOpener,
        routes: RouteTable,
        config: DecisionConfig,
    ) -> None:
        self.scoring = scoring
        self.models = models
        self.routes = routes
        self.config = config
        self._open_state = open_state
        self._state: DecisionState | None = None
        self._opening = asyncio.Lock()  # the first calls may race to open the state
        self.fallbacks: dict[str, int] = {}  # reason -> count, read by the metrics collector

    @property
    def state(self) -> DecisionState:
        if self._state is None:
            raise errors.Unavailable("the decision state opens with the first approval model")
        return self._state

    async def prepare(self) -> bool:
        """Open the online state from the approval model's reference data, if it is loaded
        (else the first Score does); whether decisions can be served now."""
        if self._state is not None:
            return True
        async with self._opening:
            if self._state is not None:
                return True
            try:
                offsets = self.models.reference_data().utc_offset_s
            except (errors.Unavailable, errors.NotFound, errors.BundleError) as exc:
                log.warning("decisions are not ready: %s", exc)
                return False
            self._state = await self._open_state(offsets)
        return True

    async def close(self) -> None:
        """Save or release the online state (the memory store writes its snapshot)."""
        if self._state is not None:
            await self._state.close()

    async def score(
        self, auth: Authorization, deadline_ns: int | None = None, trace: object = None
    ) -> Decision:
        self.scoring.readiness.check()
        world, pricing = self.models.world()
        if auth.amount.currency not in world.usd_per_unit:
            raise errors.InvalidInput(
                f"amount.currency: {auth.amount.currency} has no exchange rate on this server"
            )
        if self._state is None:
            await self.prepare()
        state = self.state
        decline = auth.declines[-1] if auth.advise_retry else None
        priced = auth.routes  # distinct: the codec refuses a route listed twice
        if decline is not None:
            priced = tuple(dict.fromkeys((*auth.routes, decline.route_id)))
        prices = pricing.routes(auth, priced)
        seen = await state.seen(auth.id)
        if seen is not None and seen.reported:
            raise errors.InvalidInput(
                f"authorization_id: {auth.id!r} was already reported; a new attempt needs a new id"
            )
        request = feature_request(auth, world, attempt_id=state.next_attempt_id())
        for past in auth.declines:
            await self._adopt(auth, past, world)
        try:
            decision = await self._modelled(
                auth, request=request, decline=decline, prices=prices,
                deadline_ns=self._budget(deadline_ns), trace=trace,
            )  # fmt: skip
        except FALLBACK_ERRORS as exc:
            decision = await self._incumbent(auth, prices, fallback_reason(exc))
        await self._remember(auth, request, decision.chosen_route)
        return decision

    async def report(self, outcome: Outcome) -> bool:
        """Record the issuer's answer; NotFound for an id Score never decided (or forgot)."""
        await self.prepare()
        seen = await self.state.seen(outcome.authorization_id)
        if seen is None:
            raise errors.NotFound(
                f"authorization_id: {outcome.authorization_id!r} is not an attempt this server "
                "scored (or it is older than the attempts it keeps)"
            )
        answer = Answer(outcome.approved, outcome.response_code, outcome.merchant_advice_code)
        route = outcome.route_id or seen.attempt.route
        if route not in self.routes.routes:
            raise errors.InvalidInput(f"route_id: unknown route {route!r}")
        return await self.state.report(outcome.authorization_id, answer, route)

    async def _modelled(
        self,
        auth: Authorization,
        *,
        request: Request,
        decline: PastDecline | None,
        prices: Mapping[str, RoutePrice],
        deadline_ns: int,
        trace: object,
    ) -> Decision:
        try:
            rows = await self.state.approval_rows(request, auth.routes)
            retry_job = None if decline is None else await self._retry_rows(auth, decline)
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
        p_now = dict(zip(auth.routes, p.tolist(), strict=True))
        value = approval_value(auth, self.config.economics)
        order = ranked(p_now, prices, value)
        advice = None
        if retry_job is not None:
            scored = _Scoring(p_now, p_retry, prices, value)
            advice = await self._advice(auth, retry_job[0], scored)
        versions = [(model.name, model.version)]
        if retry_model is not None:
            versions.append((retry_model.name, retry_model.version))
        return Decision(auth.id, order[0].route_id, order, advice, tuple(versions))

    async def _retry_rows(
        self, auth: Authorization, decline: PastDecline
    ) -> tuple[list[tuple[Action, int]], F32]:
        """The candidate reattempts and the retry model's rows for the delayed ones."""
        candidates = candidate_actions(auth, decline, auth.at, self.models.retry_delays_s())
        declined = await self._decline_features(auth, decline)
        declined_at_s = decline.ts_ms // 1000
        pairs = [
            (int(a.at.timestamp()) - declined_at_s, a.route)
            for a, _ in candidates
            if a.kind is ActionKind.RETRY
        ]
        return candidates, await self.state.retry_rows(declined, pairs)

    async def _advice(
        self, auth: Authorization, candidates: Sequence[tuple[Action, int]], scoring: _Scoring
    ) -> Advice:
        """Every candidate checked by the guardrail in one call, then the advice."""
        now = auth.at
        best_now = max(scoring.p_now, key=lambda r: scoring.net(r, scoring.p_now[r], 0))
        step_up = reattempt(auth, ActionKind.CIT_3DS, now, best_now)
        actions = [a for a, _ in candidates] + [step_up]
        verdicts = await self._check(auth, actions)
        retry_p = iter(scoring.p_retry.tolist())
        scored = []
        for (action, delay_s), verdict in zip(candidates, verdicts, strict=False):
            p = next(retry_p) if action.kind is ActionKind.RETRY else scoring.p_now[action.route]
            scored.append(Scored(action, p, scoring.net(action.route, p, delay_s), verdict))
        p_step = scoring.p_now[best_now]
        step = Scored(step_up, p_step, scoring.net(best_now, p_step, 0), verdicts[-1])
        return advise(Consultation(scored, step, auth.customer_in_session))

    async def _check(self, auth: Authorization, actions: list[Action]) -> list[Verdict]:
        return await self.state.check(auth.card.card_key, auth.merchant.id, actions, auth.at)

    async def _incumbent(
        self, auth: Authorization, prices: Mapping[str, RoutePrice], reason: str
    ) -> Decision:
        self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1
        order = incumbent_route(auth, self.routes, prices)
        routes = tuple(RouteResult(r, float("nan"), 0, prices[r]) for r in order)
        advice = None
        if auth.advise_retry:
            action = incumbent_retry(auth, auth.at)
            verdict = None if action is None else (await self._check(auth, [action]))[0]
            advice = incumbent_advice(action, verdict)
        return Decision(auth.id, order[0], routes, advice, (), reason)

    def _budget(self, deadline_ns: int | None) -> int:
        now = time.monotonic_ns()
        if deadline_ns is None:
            return now + self.config.budget_us * 1000
        return now + int(max(0, deadline_ns - now) * self.config.model_share)

    async def _adopt(self, auth: Authorization, past: PastDecline, world: ReferenceData) -> None:
        """Record a decline the consultation names, unless its outcome is already known: the
        switch knows it, so the counters must too. One Score never saw is remembered first."""
        key = _decline_key(auth, past)
        seen = await self.state.seen(key)
        if seen is None:
            attempt_id = self.state.next_attempt_id()
            request = decline_request(auth, past, world, attempt_id=attempt_id)
            await self.state.remember(key, SeenAttempt(request, attempt_record(auth, request)))
        elif seen.reported:
            return
        answer = Answer(False, past.response_code, past.merchant_advice_code)
        try:
            await self.state.report(key, answer, past.route_id)
        except errors.InvalidInput as exc:
            raise errors.InvalidInput(f"declines: {exc}") from None

    async def _decline_features(self, auth: Authorization, decline: PastDecline) -> Request:
        """The features request of the decline to retry (recorded by `_adopt`)."""
        seen = await self.state.seen(_decline_key(auth, decline))
        if seen is None:
            raise FeaturesUnavailable(f"decline {decline.authorization_id!r} was forgotten")
        return seen.request

    async def _remember(self, auth: Authorization, request: Request, route: str) -> None:
        """Keep the attempt for its outcome, on the route chosen (ReportOutcome's default; the
        features request takes the route the outcome names, see SeenAttempt.answered)."""
        await self.state.remember(
            auth.id, SeenAttempt(request, attempt_record(auth, request, route))
        )


@dataclass(frozen=True, slots=True)
class _Scoring:
    """The models' probabilities for one consultation and how they turn into value."""

    p_now: Mapping[str, float]
    p_retry: F32
    prices: Mapping[str, RoutePrice]
    value: int

    def net(self, route: str, p: float, delay_s: int) -> int:
        return self.prices[route].net(p, self.value, delay_s)


def _decline_key(auth: Authorization, decline: PastDecline) -> str:
    """The id a past decline is remembered by: the switch's, or one made from its payment and
    time when ForestGate never scored it."""
    return decline.authorization_id or f"{auth.payment_id}#{decline.ts_ms}"


__all__ = ["DecisionCore"]
