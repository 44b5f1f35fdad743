"""The retry guardrail: rules H1-H13 (docs/payments.md, "The guardrail") as one pure function
``check(action, history, rules, now) -> Verdict`` that may veto any reattempt a model proposes.

Pure: no clock, no I/O, no state; the same inputs give the same verdict. Counters are recomputed
from the History on every call (``ledger.Ledger`` keeps them running instead, with the same
verdicts), keyed on card (PAR when present), merchant and amount, never on
route, so a cascade counts like any retry (H9) and a token and its PAN share a budget (H10).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from forestgate.errors import InvalidInput
from forestgate.payments.action import Action, ActionKind
from forestgate.payments.evidence import Evidence
from forestgate.payments.facts import Facts
from forestgate.payments.history import Attempt, History, card_key, require_utc
from forestgate.payments.rulebook import COUNTERS, PERMANENT, Denial, Headroom, Rules

__all__ = [
    "Action",
    "ActionKind",
    "Attempt",
    "History",
    "Rules",
    "Verdict",
    "card_key",
    "check",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guardrail's answer.

    ``rule`` is the binding rule: the one that denied ("H1".."H13", or "internal_budget", or
    "no_decline" when there is no declined attempt to retry), or, when allowed, the counter
    closest to its limit (None if none applies). ``earliest_retry_at`` is, for a time-bound
    denial, the first instant that rule would allow (a lower bound: check again then); None for
    a permanent denial. ``cancel_recurring`` asks the caller to stop the recurring schedule
    (Mastercard MAC 21, Visa R0/R1/R3).
    """

    allowed: bool
    rule: str | None
    reason: str
    earliest_retry_at: dt.datetime | None = None
    cancel_recurring: bool = False


def check(action: Action, history: History, rules: Rules, now: dt.datetime) -> Verdict:
    """Allow or deny ``action`` given the card+merchant ``history`` under ``rules`` at ``now``.

    ``now`` is the decision time: every attempt in ``history`` must be at or before it and the
    action at or after it. The limits in force on the action's UTC date apply; a past decline is
    classified as on its own date. The action retries the payment ``action.payment_id`` (its
    latest attempt is the failed one), or without one the latest attempt of ``history``.
    Denials that never lapse win over time-bound ones (in the order H11, H8, H12, H13, H4, H1,
    H7, H3, then H5, H6, H2, internal budget); among time-bound denials, the one lapsing last
    binds.
    """
    last = history.last
    require_decision_time(action, now, None if last is None else last.at)
    facts, cancel = Facts.of(action, history, rules.codes, rules.limits)
    return judge(action, facts, cancel, now)


def require_decision_time(action: Action, now: dt.datetime, newest: dt.datetime | None) -> None:
    """InvalidInput unless ``newest`` (the latest attempt) <= ``now`` <= ``action.at``."""
    require_utc(now, "now")
    if action.at < now:
        raise InvalidInput(f"Action.at {action.at.isoformat()} is before now {now.isoformat()}")
    if newest is not None and newest > now:
        raise InvalidInput(f"history has an attempt at {newest.isoformat()}, after now")


def judge(action: Action, evidence: Evidence | None, cancel: bool, now: dt.datetime) -> Verdict:
    """The verdict on ``action`` from the ``evidence`` of its failed payment (None: there is no
    attempt to retry); ``cancel``: the history asks to stop the recurring schedule."""
    if not action.is_reattempt:
        return Verdict(True, None, f"{action.kind}: no authorization is sent", None, cancel)
    if evidence is None or evidence.failed.attempt.approved:
        what = "no declined attempt to retry"
        if evidence is None and action.payment_id is not None:
            what = f"no attempt of payment {action.payment_id} to retry"
        return Verdict(False, "no_decline", what, None, cancel)
    denials: list[Denial] = []
    headroom: list[Headroom] = []
    for rule in PERMANENT:
        denial = rule(evidence)
        if denial is not None:
            denials.append(denial)
    for counter in COUNTERS:
        outcome = counter(evidence)
        if isinstance(outcome, Denial):
            denials.append(outcome)
        elif outcome is not None:
            headroom.append(outcome)
    if denials:
        # A denial that waiting cannot lift beats any that lapses; then the last to lapse binds.
        permanent = [d for d in denials if d.earliest is None]
        binding = permanent[0] if permanent else max(denials, key=lambda d: d.earliest or now)
        return Verdict(False, binding.rule, binding.reason, binding.earliest, cancel)
    if headroom:
        _, closest, what = min(headroom)
        return Verdict(True, closest, f"allowed; closest limit {closest}: {what}", None, cancel)
    return Verdict(True, None, "allowed; no counter applies", None, cancel)
