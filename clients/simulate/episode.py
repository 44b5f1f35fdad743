"""One payment under one policy: the first attempt on the route the policy chooses, then the
reattempts it asks for after each decline, in simulated time, each resolved against the ground
truth, re-checked by the simulator's guardrail and reported back to the policy."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from forestgate.clients.simulate.dataset import Payment
from forestgate.clients.simulate.ledger import Ledger, attempt_of
from forestgate.clients.simulate.truth import Answer, Decline, Draws, GroundTruth
from forestgate.payments.action import Action, ActionKind

WINDOW = dt.timedelta(days=14)  # the generator's retry window after the first decline
# The generator's step-up model (training/generator/simulate.py): the customer stays (0.85) and
# passes the 3DS challenge (0.86), then authorizes about 1-4 minutes later.
STEP_UP_COMPLETES = 0.85 * 0.86
STEP_UP_DELAY = dt.timedelta(seconds=150)


@dataclass(frozen=True, slots=True)
class Choice:
    """A policy's first attempt: the route and the id the attempt is reported under."""

    route_id: str
    authorization_id: str
    fallback: bool = False  # the incumbent rules answered inside the policy


@dataclass(frozen=True, slots=True)
class NextAttempt:
    """A reattempt a policy asks for after a decline."""

    kind: ActionKind
    at: dt.datetime
    route_id: str
    authorization_id: str
    credential_changed: bool = False


@dataclass(frozen=True, slots=True)
class Attempted:
    """An attempt the simulator sent and the answer it got."""

    authorization_id: str
    kind: ActionKind | None  # None: the first attempt
    at: dt.datetime
    route_id: str
    answer: Answer
    family: str  # forestgate.payments Family of the response code
    three_ds: bool = False

    @property
    def approved(self) -> bool:
        return self.answer.approved

    @property
    def response_code(self) -> str:
        return self.answer.response_code

    @property
    def merchant_advice_code(self) -> str:
        return self.answer.merchant_advice_code


class Policy(Protocol):
    name: str

    async def first(self, payment: Payment) -> Choice: ...

    async def next(self, payment: Payment, sent: list[Attempted]) -> NextAttempt | None: ...

    async def report(self, payment: Payment, attempt: Attempted) -> None: ...


@dataclass
class PaymentResult:
    payment: Payment
    attempts: list[Attempted] = field(default_factory=list)
    violations: int = 0  # reattempts the simulator's guardrail denied
    fallback: bool = False
    abandoned_step_up: bool = False

    @property
    def approved(self) -> bool:
        return any(a.approved for a in self.attempts)


async def run_payment(
    payment: Payment,
    policy: Policy,
    *,
    truth: GroundTruth,
    ledger: Ledger,
    seed: int,
    max_attempts: int,
) -> PaymentResult:
    """Every attempt ``policy`` makes of ``payment``, at most ``max_attempts``."""
    choice = await policy.first(payment)
    answer = truth.first(payment, choice.route_id, Draws.of(seed, payment.index, 0))
    result = PaymentResult(payment, fallback=choice.fallback)
    at = payment.first.at
    first = _attempted(
        truth, payment, choice.authorization_id, None, at=at, route_id=choice.route_id,
        answer=answer,
    )  # fmt: skip
    await _send(policy, ledger, payment, result, first)
    while not result.approved and len(result.attempts) < max_attempts:
        last = result.attempts[-1]
        wanted = await policy.next(payment, result.attempts)
        if wanted is None:
            break
        draws = Draws.of(seed, payment.index, len(result.attempts))
        at = max(wanted.at, last.at)
        if wanted.kind is ActionKind.CIT_3DS:
            if not payment.is_cit or draws.step_up >= STEP_UP_COMPLETES:
                result.abandoned_step_up = payment.is_cit
                break
            at = max(at, last.at + STEP_UP_DELAY)
        if at - first.at > WINDOW:
            break
        verdict = ledger.check(payment, _action(payment, wanted, at), now=last.at)
        result.violations += not verdict.allowed
        after = Decline(last.at, last.route_id, last.response_code, last.family)
        step_up = wanted.kind is ActionKind.CIT_3DS
        answer = truth.reattempt(payment, wanted.route_id, at, after, draws, step_up=step_up)
        attempt = _attempted(
            truth, payment, wanted.authorization_id, wanted.kind, at=at,
            route_id=wanted.route_id, answer=answer, three_ds=step_up,
        )  # fmt: skip
        await _send(policy, ledger, payment, result, attempt)
    return result


async def _send(
    policy: Policy, ledger: Ledger, payment: Payment, result: PaymentResult, attempt: Attempted
) -> None:
    result.attempts.append(attempt)
    ledger.file(
        payment,
        attempt_of(
            payment, at=attempt.at, route_id=attempt.route_id, approved=attempt.approved,
            response_code=attempt.response_code,
            merchant_advice_code=attempt.merchant_advice_code, three_ds=attempt.three_ds,
        ),
    )  # fmt: skip
    await policy.report(payment, attempt)


def _attempted(
    truth: GroundTruth,
    payment: Payment,
    authorization_id: str,
    kind: ActionKind | None,
    *,
    at: dt.datetime,
    route_id: str,
    answer: Answer,
    three_ds: bool = False,
) -> Attempted:
    family = truth.family(str(payment.row["brand"]), answer.response_code, at.date())
    return Attempted(authorization_id, kind, at, route_id, answer, family, three_ds)


def _action(payment: Payment, wanted: NextAttempt, at: dt.datetime) -> Action:
    in_session = wanted.kind is ActionKind.CIT_3DS or (
        payment.is_cit and bool(payment.row["customer_in_session"])
    )
    return Action(
        kind=wanted.kind,
        at=at,
        route=wanted.route_id,
        amount_minor=int(payment.row["amount_minor"]),
        currency=str(payment.row["currency"]),
        credential_changed=wanted.credential_changed,
        customer_in_session=in_session,
        is_mit=not payment.is_cit,
    )
