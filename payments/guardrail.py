"""The retry guardrail: rules H1-H13 of reference/payments.md section 2.5 as one pure function
``check(action, history, rules, now) -> Verdict`` that may veto any reattempt a model proposes.

Pure: no clock, no I/O, no state; the same inputs give the same verdict. Counters are recomputed
from the History on every call, keyed on card (PAR when present), merchant and amount, never on
route, so a cascade counts like any retry (H9) and a token and its PAN share a budget (H10).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from forestgate.errors import InvalidInput
from forestgate.payments.codes import ResponseCodes, load_rules_file
from forestgate.payments.history import Attempt, History, card_key, require_utc
from forestgate.payments.limits import REATTEMPT_KINDS, ActionKind, Limits
from forestgate.payments.money import check_currency

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
class Rules:
    """The response codes and the guardrail limits of one rules file, checked at load."""

    codes: ResponseCodes
    limits: Limits

    @classmethod
    def load(cls, path: Path | None = None) -> Rules:
        """Read and check ``path`` (default: the packaged rules.yaml); ConfigError if invalid."""
        codes, limits = load_rules_file(path)
        return cls(codes, limits)

    @property
    def version(self) -> str:
        return self.codes.version


@dataclass(frozen=True, slots=True)
class Action:
    """A candidate the retry model (or a cascade) proposes after a decline."""

    kind: ActionKind | str
    at: dt.datetime  # when the attempt would be sent, tz-aware
    route: str  # never changes the verdict (H9)
    amount_minor: int
    currency: str
    card_present: bool = False
    credential_changed: bool = False  # new PAN/expiry from the updater, CVV re-entered, token fixed
    customer_in_session: bool = False
    is_mit: bool = True

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", ActionKind(self.kind))
        except ValueError:
            kinds = ", ".join(k.value for k in ActionKind)
            raise InvalidInput(f"Action.kind must be one of {kinds}, got {self.kind!r}") from None
        require_utc(self.at, "Action.at")
        check_currency(self.currency)
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise InvalidInput("Action.amount_minor must be an int of minor units")

    @property
    def is_reattempt(self) -> bool:
        """Whether the action sends an authorization (and so is counted)."""
        return self.kind in REATTEMPT_KINDS


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
    action at or after it. The rules in force on the action's UTC date apply.
    """
    raise NotImplementedError("guardrail.check lands in the next commit")
