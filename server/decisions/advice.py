"""Retry advice after a decline: the models score every candidate reattempt, the guardrail filters
them, and the allowed candidate with the best expected net value wins. A reattempt the guardrail
denies is never advised; when none is allowed, the advice says which rule bound it.

Candidates: a cascade now to each other candidate route (approval model), and a retry on the
declined route after each delay of the retry model's grid (retry model).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from forestgate.payments.action import Action, ActionKind
from forestgate.payments.guardrail import History, Rules, Verdict, check
from forestgate.server.decisions.authorization import Authorization, PastDecline
from forestgate.server.decisions.value import RoutePrice

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
    base = {
        "amount_minor": auth.amount.amount_minor,
        "currency": auth.amount.currency,
        "card_present": auth.card_present,
        "customer_in_session": auth.customer_in_session,
        "is_mit": not auth.cit,
    }
    actions = [
        (Action(ActionKind.CASCADE, now, route, **base), 0)  # type: ignore[arg-type]
        for route in auth.routes
        if route != decline.route_id
    ]
    declined_at = dt.datetime.fromtimestamp(decline.ts_ms / 1000, dt.UTC)
    for delay in delays_s:
        at = declined_at + dt.timedelta(seconds=delay)
        if at >= now:
            retry = Action(ActionKind.RETRY, at, decline.route_id, **base)  # type: ignore[arg-type]
            actions.append((retry, int((at - now).total_seconds())))
    return actions


@dataclass(frozen=True, slots=True)
class Consultation:
    """What advice is decided from, besides the scored candidates."""

    auth: Authorization
    history: History
    rules: Rules
    now: dt.datetime
    p_now: Mapping[str, float]  # approval probability of an attempt now, per candidate route
    prices: Mapping[str, RoutePrice]
    value_minor: int


def advise(scored: Sequence[Scored], c: Consultation) -> Advice:
    """The best allowed reattempt with a positive expected value, else what the rules allow."""
    cancel = any(s.verdict.cancel_recurring for s in scored)
    allowed = [s for s in scored if s.verdict.allowed]
    if allowed:
        best = max(allowed, key=lambda s: (s.net_value_minor, -s.action.at.timestamp()))
        if best.net_value_minor > 0:
            return Advice(
                ActionKind(best.action.kind), best.action.at, best.action.route,
                best.p_approve, best.net_value_minor, best.verdict.rule or "",
                best.verdict.reason, cancel,
            )  # fmt: skip
        return Advice(
            ActionKind.NO_RETRY, None, "", 0.0, 0, "",
            "no allowed reattempt has a positive expected net value", cancel,
        )  # fmt: skip
    binding = _binding([s.verdict for s in scored])
    if binding is None:
        return Advice(ActionKind.NO_RETRY, None, "", 0.0, 0, "", "no candidate reattempt", cancel)
    if binding.rule == NEEDS_NEW_DATA:
        return Advice(
            ActionKind.UPDATE_CREDENTIALS, None, "", 0.0, 0, binding.rule, binding.reason, cancel
        )
    if binding.rule == NEEDS_SCA and c.auth.customer_in_session:
        return _step_up(c, cancel)
    return Advice(
        ActionKind.NO_RETRY, binding.earliest_retry_at, "", 0.0, 0,
        binding.rule or "", binding.reason, cancel,
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


def _step_up(c: Consultation, cancel: bool) -> Advice:
    """An SCA soft decline with the customer present: a customer-initiated 3DS reattempt on the
    best-priced route, if the guardrail allows it."""
    route = max(c.p_now, key=lambda r: c.prices[r].net(c.p_now[r], c.value_minor))
    auth = c.auth
    action = Action(
        ActionKind.CIT_3DS, c.now, route, auth.amount.amount_minor, auth.amount.currency,
        card_present=auth.card_present, customer_in_session=True, is_mit=False,
    )  # fmt: skip
    verdict = check(action, c.history, c.rules, c.now)
    if not verdict.allowed:
        return Advice(
            ActionKind.NO_RETRY, None, "", 0.0, 0, verdict.rule or "", verdict.reason, cancel
        )
    p = c.p_now[route]
    return Advice(
        ActionKind.CIT_3DS, c.now, route, p, c.prices[route].net(p, c.value_minor),
        verdict.rule or "", verdict.reason, cancel,
    )  # fmt: skip
