"""The evidence the guardrail's rules read: the few facts of a card+merchant history that rules
H1-H13 depend on, asked as questions (the first hard decline on the current credential, the
declines inside a window, ...) rather than as the list of attempts.

Two answerers exist and must agree: ``facts.Facts`` scans a whole History on every check, and
``ledger.Ledger`` keeps the answers as running state. ``Reading`` is the classification both
share, so a code means the same thing to each.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from forestgate.payments.action import Action
from forestgate.payments.codes import (
    NETWORK_MASTERCARD,
    AdviceAction,
    AdviceInfo,
    CodeInfo,
    Family,
    Outcome,
    ResponseCodes,
)
from forestgate.payments.history import Attempt
from forestgate.payments.limits import Limits

AmountKey = tuple[int, str]  # (amount_minor, currency): what the per-amount counters key on


def amount_key(amount_minor: int, currency: str) -> AmountKey:
    return (amount_minor, currency)


@dataclass(frozen=True, slots=True)
class Reading:
    """One attempt as the rules read it: its response code classified on its own date and, for
    Mastercard, its merchant advice code."""

    attempt: Attempt
    info: CodeInfo
    advice: AdviceInfo | None

    @classmethod
    def of(cls, codes: ResponseCodes, attempt: Attempt) -> Reading:
        mac = attempt.merchant_advice_code
        advice = (
            codes.merchant_advice(mac)
            if mac is not None and attempt.network == NETWORK_MASTERCARD
            else None
        )
        return cls(
            attempt, codes.classify(attempt.network, attempt.response_code, attempt.at), advice
        )

    @property
    def declined(self) -> bool:
        return not self.attempt.approved

    @property
    def unknown(self) -> bool:
        """H11: a code or advice code the rules file does not know."""
        return not self.info.known or (self.advice is not None and not self.advice.known)

    @property
    def stops(self) -> bool:
        """H4: a stop of the recurring schedule (Visa R-codes, MAC 21), whatever the card data."""
        return self.info.cancels_recurring or bool(self.advice and self.advice.cancels_recurring)

    @property
    def never_retry(self) -> bool:
        """H4: MAC 03/21, binding on the credential it was given for."""
        return self.advice is not None and self.advice.action is AdviceAction.NEVER_RETRY

    @property
    def hard(self) -> bool:
        return self.info.outcome is Outcome.HARD

    @property
    def sca(self) -> bool:
        return self.info.family is Family.SCA

    @property
    def needs_data_change(self) -> bool:
        """H3: Visa category 3, or MAC 01/04."""
        update = self.advice is not None and self.advice.action is AdviceAction.UPDATE_CREDENTIALS
        return self.info.visa_category == 3 or update

    @property
    def retry_until(self) -> dt.datetime | None:
        """H5: the instant a MAC 24-30 delay ends, None without one."""
        if self.advice is None or self.advice.retry_after is None:
            return None
        return self.attempt.at + self.advice.retry_after


@dataclass(frozen=True, slots=True)
class Series:
    """Event times in a rolling window: ``times`` sorted, the window holding ``times[start:]``."""

    times: Sequence[dt.datetime]
    start: int

    @classmethod
    def since(cls, times: Sequence[dt.datetime], after: dt.datetime) -> Series:
        """The events of sorted ``times`` strictly after ``after`` (one a window old is out)."""
        return cls(times, bisect.bisect_right(times, after))

    @property
    def count(self) -> int:
        return len(self.times) - self.start

    def nth(self, index: int) -> dt.datetime:
        """The ``index``-th oldest event in the window (0: the oldest)."""
        return self.times[self.start + index]


class Evidence(Protocol):
    """What the rules ask about a history, for one candidate action.

    "The payment" is the failed payment the action retries; "current credential" the attempts
    from the last one sent with changed card data (none when the action changes it).
    """

    @property
    def action(self) -> Action: ...
    @property
    def limits(self) -> Limits: ...
    @property
    def day(self) -> dt.date: ...
    @property
    def failed(self) -> Reading:
        """The payment's latest attempt."""
        ...

    @property
    def payment_first_at(self) -> dt.datetime: ...
    @property
    def payment_retries(self) -> int: ...
    @property
    def unknown_decline(self) -> Reading | None:
        """H11: the payment's first decline with an unknown code or advice code."""
        ...

    @property
    def sca_decline(self) -> Reading | None:
        """H7: the payment's first SCA soft decline."""
        ...

    @property
    def retry_after(self) -> tuple[dt.datetime, str] | None:
        """H5: the latest end of a MAC delay among the payment's declines, and its code."""
        ...

    def data_change_decline(self, *, skip_sca: bool) -> Reading | None:
        """H3: the payment's first decline on the current credential asking for new card data
        (skipping SCA declines when ``skip_sca``)."""
        ...

    @property
    def hard_decline(self) -> Reading | None:
        """H1: the first hard decline on the current credential, any payment."""
        ...

    @property
    def never_retry_decline(self) -> Reading | None:
        """H4: the first decline that stops the schedule, or carries MAC 03/21 on the current
        credential."""
        ...

    def latest_never_retry(self, amount: AmountKey) -> dt.datetime | None:
        """H4: when the latest such decline of ``amount`` was sent."""
        ...

    def declines_after(self, after: dt.datetime) -> Series:
        """H6: declines of any amount."""
        ...

    def amount_declines_after(self, amount: AmountKey, after: dt.datetime) -> Series:
        """H6: declines of ``amount``."""
        ...

    def reattempts_after(self, amount: AmountKey, after: dt.datetime) -> Series:
        """H2: attempts of ``amount`` sent after a decline of it, approved or not."""
        ...
