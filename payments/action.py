"""A candidate action: what a retry model or a cascade proposes to do after a decline, before the
guardrail has allowed it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from forestgate.errors import InvalidInput
from forestgate.payments.history import require_utc
from forestgate.payments.money import check_currency


class ActionKind(StrEnum):
    """What a retry advice proposes to do after a decline."""

    RETRY = "retry"  # the same payment again later (same route or not)
    CASCADE = "cascade"  # immediately on another acquirer route: a reattempt like any other (H9)
    CIT_3DS = (
        "cit_3ds"  # customer-initiated, authenticated with 3DS while the customer is in session
    )
    UPDATE_CREDENTIALS = "update_credentials"  # ask the updater or the customer; no authorization
    NO_RETRY = "no_retry"  # stop


REATTEMPT_KINDS = frozenset({ActionKind.RETRY, ActionKind.CASCADE, ActionKind.CIT_3DS})


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
    # The payment it retries (Attempt.payment_id); None: the latest attempt of the history.
    payment_id: str | None = None

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
