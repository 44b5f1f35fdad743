"""The incumbent policy, as the generator's logging policies run it (training/generator/policy.py):
a local eligible route, else the cheapest; after a merchant-initiated decline, the fixed-v1
schedule (1 d, 3 d, 7 d after the first decline, an hour after a technical one, never before a
MAC 24-30 wait). It reads the codes as fixed-v1 does but never asks the guardrail: the
simulator checks its retries and counts what the guardrail would have denied."""

from __future__ import annotations

import datetime as dt

import numpy as np

from forestgate.clients.simulate.dataset import Payment
from forestgate.clients.simulate.episode import Attempted, Choice, NextAttempt
from forestgate.clients.simulate.pricing import Pricing
from forestgate.payments.action import ActionKind
from forestgate.payments.codes import AdviceAction, ResponseCodes
from forestgate.training.generator import policy as generator_policy

TECHNICAL_FIRST_RETRY_S = 3_600
STOP_CODES = frozenset({"R0", "R1", "R3"})  # the recurring schedule is cancelled
NO_RETRY_FAMILIES = frozenset({"hard", "sca", "data"})  # data: only after the updater has news


def incumbent_route(payment: Payment, pricing: Pricing) -> str:
    """A local eligible route if any (the cheapest of them), else the cheapest eligible route by
    approval cost; ties keep the route table's order."""
    order = {route_id: i for i, route_id in enumerate(pricing.table.routes)}
    country = str(payment.row["issuer_country"])

    def rank(route_id: str) -> tuple[bool, int, int]:
        local = country in pricing.table[route_id].local_countries
        cost = pricing.costs(payment, route_id).approval_cost.amount_minor
        return (not local, cost, order[route_id])

    return min(payment.eligible_routes, key=rank)


class Incumbent:
    """The incumbent routing rule and fixed-v1 retry schedule as an episode policy."""

    name = "incumbent"

    def __init__(self, pricing: Pricing, codes: ResponseCodes | None = None) -> None:
        self.pricing = pricing
        self.codes = ResponseCodes.load() if codes is None else codes

    async def first(self, payment: Payment) -> Choice:
        return Choice(incumbent_route(payment, self.pricing), f"inc-{payment.payment_id}-1")

    async def next(self, payment: Payment, sent: list[Attempted]) -> NextAttempt | None:
        last = sent[-1]
        if payment.is_cit or not self._retries(payment, last):
            return None
        retries = len(sent) - 1
        since_first = int((last.at - sent[0].at).total_seconds())
        if last.family == "technical" and retries == 0:
            delay = TECHNICAL_FIRST_RETRY_S
        else:
            delay = int(
                generator_policy.fixed_delay(
                    np.array([retries]), np.array([since_first]), np.array([self._wait_s(last)])
                )[0]
            )
        if delay < 0 or since_first + delay > generator_policy.WINDOW_S:
            return None
        return NextAttempt(
            kind=ActionKind.RETRY,
            at=last.at + dt.timedelta(seconds=delay),
            route_id=last.route_id,
            authorization_id=f"inc-{payment.payment_id}-{len(sent) + 1}",
        )

    async def report(self, payment: Payment, attempt: Attempted) -> None:
        """The incumbent keeps no state between attempts."""

    def _retries(self, payment: Payment, last: Attempted) -> bool:
        if last.response_code in STOP_CODES or last.family in NO_RETRY_FAMILIES:
            return False
        if not last.merchant_advice_code:
            return True
        action = self.codes.merchant_advice(last.merchant_advice_code).action
        return action not in (AdviceAction.NEVER_RETRY, AdviceAction.UPDATE_CREDENTIALS)

    def _wait_s(self, last: Attempted) -> int:
        if not last.merchant_advice_code:
            return 0
        wait = self.codes.merchant_advice(last.merchant_advice_code).retry_after
        return 0 if wait is None else int(wait.total_seconds())
