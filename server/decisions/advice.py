"""Retry advice after a decline: the models score every candidate reattempt, the guardrail filters
them, and the allowed candidate with the best expected net value wins. A reattempt the guardrail
denies is never advised; when none is allowed, the advice says which rule bound it.

Candidates: a cascade now to each other candidate route (approval model), and a retry on the
declined route after each delay of the retry model's grid (retry model).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from forestgate.payments.action import Action, ActionKind
from forestgate.payments.guardrail import Verdict
from forestgate.server.decisions.authorization import Authorization, PastDecline

# Denials that another kind of action answers: new card data (H3), or the customer
# authenticating in session (H7, SCA soft declines).
NEEDS_NEW_DATA = "H3"
NEEDS_SCA = "H7"


@dataclass(frozen=True, slots=True)
class Advice:
    action: ActionKind
    at: dt.datetime | None
    route_id: str
    p_approve: float
    net_value_minor: int
    rule: str
    reason: str
    cancel_recurring: bool = False


@dataclass(frozen=True, slots=True)
class Scored:
    action: Action
    p_approve: float
    net_value_minor: int
    verdict: Verdict


def candidate_actions(
    auth: Authorization, decline: PastDecline, now: dt.datetime, delays_s: Sequence[int]
) -> list[tuple[Action, int]]:
    """(action, delay in seconds) for every reattempt worth scoring."""
    actions = [
        (reattempt(auth, ActionKind.CASCADE, now, route), 0)
        for route in auth.routes
        if route != decline.route_id
    ]
    declined_at = dt.datetime.fromtimestamp(decline.ts_ms / 1000, dt.UTC)
    for delay in delays_s:
        at = declined_at + dt.timedelta(seconds=delay)
        if at >= now:
            retry = reattempt(auth, ActionKind.RETRY, at, decline.route_id)
            actions.append((retry, int((at - now).total_seconds())))
    return actions


def reattempt(auth: Authorization, kind: ActionKind, at: dt.datetime, route: str) -> Action:
    """An action on ``auth``'s payment; a step-up is customer-initiated and in session."""
    step_up = kind is ActionKind.CIT_3DS
    return Action(
        kind, at, route, auth.amount.amount_minor, auth.amount.currency,
        card_present=auth.card_present,
        customer_in_session=step_up or auth.customer_in_session,
        is_mit=not (step_up or auth.cit), payment_id=auth.payment_id,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Consultation:
    """What advice is decided from: every scored reattempt with its verdict, and the
    customer-initiated 3DS step-up (the answer to an SCA soft decline) with its own."""

    scored: Sequence[Scored]
    step_up: Scored | None
    customer_in_session: bool


def advise(c: Consultation) -> Advice:
    """The best allowed reattempt with a positive expected value, else what the rules allow."""
    cancel = any(s.verdict.cancel_recurring for s in c.scored)
    allowed = [s for s in c.scored if s.verdict.allowed]
    if allowed:
        best = max(allowed, key=lambda s: (s.net_value_minor, -s.action.at.timestamp()))
        if best.net_value_minor > 0:
            return _advice(best, cancel)
        return Advice(
            ActionKind.NO_RETRY, None, "", 0.0, 0, "",
            "no allowed reattempt has a positive expected net value", cancel,
        )  # fmt: skip
    binding = _binding([s.verdict for s in c.scored])
    if binding is None:
        return Advice(ActionKind.NO_RETRY, None, "", 0.0, 0, "", "no candidate reattempt", cancel)
    if binding.rule == NEEDS_NEW_DATA:
        return Advice(
            ActionKind.UPDATE_CREDENTIALS, None, "", 0.0, 0, binding.rule, binding.reason, cancel
        )
    step_up = c.step_up
    if binding.rule == NEEDS_SCA and c.customer_in_session and step_up is not None:
        if step_up.verdict.allowed:
            return _advice(step_up, cancel)
        binding = step_up.verdict
    return Advice(
        ActionKind.NO_RETRY, binding.earliest_retry_at, "", 0.0, 0,
        binding.rule or "", binding.reason, cancel,
    )  # fmt: skip


def _advice(chosen: Scored, cancel: bool) -> Advice:
    action, verdict = chosen.action, chosen.verdict
    return Advice(
        ActionKind(action.kind), action.at, action.route, chosen.p_approve,
        chosen.net_value_minor, verdict.rule or "", verdict.reason, cancel,
    )  # fmt: skip


def _binding(verdicts: Sequence[Verdict]) -> Verdict | None:
    """The denial to report: one that waiting cannot lift first, else the one lapsing soonest
    (the earliest a reattempt could become possible)."""
    if not verdicts:
        return None
    permanent = [v for v in verdicts if v.earliest_retry_at is None]
    if permanent:
        return permanent[0]
    never = dt.datetime.max.replace(tzinfo=dt.UTC)
    return min(verdicts, key=lambda v: v.earliest_retry_at or never)
