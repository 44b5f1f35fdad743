"""ForestGate as an episode policy, over gRPC: Score routes each first attempt and advises after
each decline, ReportOutcome sends every answer back. A failed call is answered the way a card
switch would: the incumbent's route, no reattempt. The only module here that knows the network.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Awaitable, Callable

import grpc

from forestgate.clients.simulate.dataset import Payment
from forestgate.clients.simulate.episode import Attempted, Choice, NextAttempt
from forestgate.clients.simulate.incumbent import incumbent_route
from forestgate.clients.simulate.pricing import Pricing
from forestgate.clients.simulate.request import outcome, score_request
from forestgate.payments.action import ActionKind
from forestgate.protos.forestgate.v1 import scoring_pb2 as pb

CASCADE_DELAY = dt.timedelta(seconds=2)  # the generator's cascades follow 1-4 s after the decline
ACTIONS = {
    pb.RETRY_ACTION_RETRY: ActionKind.RETRY,
    pb.RETRY_ACTION_CASCADE: ActionKind.CASCADE,
    pb.RETRY_ACTION_CIT_3DS: ActionKind.CIT_3DS,
}


class Pacer:
    """Open-loop pacing: the n-th call may start n / rate seconds after the first, whenever the
    calls before it finish; no rate, no wait. After a stall, at most one second's worth of
    calls go at once to catch up. ``clock`` and ``sleep`` are injected so tests run on fake time."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.clock = clock
        self.sleep = sleep
        self.next_at: float | None = None

    async def slot(self) -> None:
        if not self.interval:
            return
        now = self.clock() if self.clock else asyncio.get_running_loop().time()
        self.next_at = now if self.next_at is None else max(self.next_at, now - 1.0)
        start, self.next_at = self.next_at, self.next_at + self.interval
        if start > now:
            await self.sleep(start - now)


class ForestGate:
    """The policy under test: every decision is a Score call to ``channel``'s server."""

    name = "forestgate"

    def __init__(
        self, channel: grpc.aio.Channel, pricing: Pricing, *, pacer: Pacer, deadline_s: float
    ) -> None:
        # The two methods as typed multicallables (the generated stub is untyped).
        self.score = channel.unary_unary(
            "/forestgate.v1.Scoring/Score",
            request_serializer=pb.ScoreRequest.SerializeToString,
            response_deserializer=pb.ScoreResponse.FromString,
        )
        self.report_outcome = channel.unary_unary(
            "/forestgate.v1.Scoring/ReportOutcome",
            request_serializer=pb.ReportOutcomeRequest.SerializeToString,
            response_deserializer=pb.ReportOutcomeResponse.FromString,
        )
        self.pricing = pricing
        self.pacer = pacer
        self.deadline_s = deadline_s
        self.errors: Counter[str] = Counter()  # failed calls by RPC and status code
        self.advice: Counter[str] = Counter()  # retry advice by action

    async def _score(self, request: pb.ScoreRequest) -> pb.ScoreResponse | None:
        await self.pacer.slot()
        try:
            response: pb.ScoreResponse = await self.score(request, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as exc:
            self.errors[f"Score {exc.code().name}"] += 1
            return None
        return response

    async def first(self, payment: Payment) -> Choice:
        auth = f"fg-{payment.payment_id}-1"
        response = await self._score(score_request(payment, auth, at=payment.first.at))
        if response is None or response.chosen_route not in payment.eligible_routes:
            if response is not None:
                self.errors["Score chose a route that is not a candidate"] += 1
            return Choice(incumbent_route(payment, self.pricing), auth, fallback=True)
        return Choice(response.chosen_route, auth, fallback=response.fallback)

    async def next(self, payment: Payment, sent: list[Attempted]) -> NextAttempt | None:
        """Ask for advice at the decline; the reattempt it leads to is then scored again at its
        own send time (as a switch routes every authorization it sends), and reported by that
        call's id, so the server records it at the time it was sent."""
        last = sent[-1]
        auth = f"fg-{payment.payment_id}-{len(sent) + 1}"
        declines = [a for a in sent if not a.approved]
        consult = score_request(payment, f"{auth}-advice", at=last.at, declines=declines)
        response = await self._score(consult)
        if response is None:
            return None
        advice = response.retry
        self.advice[pb.RetryAction.Name(advice.action)] += 1
        kind = ACTIONS.get(advice.action)
        if kind is None:
            return None  # no retry, new credentials needed (no updater here), or unspecified
        at = last.at + CASCADE_DELAY if kind is ActionKind.CASCADE else last.at
        if advice.HasField("earliest_time"):
            at = max(at, advice.earliest_time.ToDatetime(tzinfo=dt.UTC))
        route = advice.route_id or last.route_id
        send = score_request(payment, auth, at=at, declines=declines, candidates=[route],
                             advise=False)  # fmt: skip
        if await self._score(send) is None:
            return None
        return NextAttempt(kind, at, route, auth)

    async def report(self, payment: Payment, attempt: Attempted) -> None:
        try:
            await self.report_outcome(outcome(attempt), timeout=self.deadline_s)
        except grpc.aio.AioRpcError as exc:
            self.errors[f"ReportOutcome {exc.code().name}"] += 1
