"""The evidence of a whole History, recomputed on each check: every attempt classified once, each
rule's question answered by a scan. The reference answerer: ``ledger.Ledger`` must agree with it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from forestgate.payments.action import Action
from forestgate.payments.codes import ResponseCodes
from forestgate.payments.evidence import AmountKey, Reading, Series, amount_key
from forestgate.payments.history import History
from forestgate.payments.limits import Limits


def cancels_recurring(readings: tuple[Reading, ...]) -> bool:
    """Whether any decline asked to stop the recurring schedule (MAC 21, Visa R-codes)."""
    return any(r.declined and r.stops for r in readings)


def payment_of(action: Action, readings: tuple[Reading, ...]) -> tuple[int, ...]:
    """The indexes of the failed payment the action retries, oldest first, its failed attempt
    last; empty when there is none.

    With ``action.payment_id``: the attempts of that payment. Without, the failed attempt is the
    latest of the history, and its payment the attempts with its payment_id or, when it has none,
    the declines of its amount since the last approval of that amount.
    """
    attempts = [r.attempt for r in readings]
    if action.payment_id is not None:
        return tuple(i for i, a in enumerate(attempts) if a.payment_id == action.payment_id)
    if not attempts:
        return ()
    failed = attempts[-1]
    if failed.payment_id is not None:
        return tuple(i for i, a in enumerate(attempts) if a.payment_id == failed.payment_id)
    chain: list[int] = []
    for i, a in enumerate(attempts[:-1]):
        if a.same_amount(failed.amount_minor, failed.currency):
            chain = [] if a.approved else [*chain, i]
    return (*chain, len(attempts) - 1)


@dataclass(frozen=True, slots=True)
class Facts:
    """``Evidence`` scanned from the readings of a History. ``current`` indexes the attempts on
    the current credential, ``payment`` those of the failed payment (its last is the failed)."""

    action: Action
    limits: Limits
    readings: tuple[Reading, ...]
    current: range
    payment: tuple[int, ...]
    day: dt.date

    @classmethod
    def of(
        cls, action: Action, history: History, codes: ResponseCodes, limits: Limits
    ) -> tuple[Facts | None, bool]:
        """The evidence for ``action`` (None when it retries no attempt of the history) and
        whether the history asks to cancel the recurring schedule."""
        readings = tuple(Reading.of(codes, a) for a in history.attempts)
        cancel = cancels_recurring(readings)
        payment = payment_of(action, readings)
        if not payment:
            return None, cancel
        start = 0
        for i, r in enumerate(readings):
            if r.attempt.credential_changed:
                start = i
        if action.credential_changed:
            start = len(readings)
        day = action.at.astimezone(dt.UTC).date()
        current = range(start, len(readings))
        return cls(action, limits, readings, current, payment, day), cancel

    def _declines(self, indexes: range | tuple[int, ...]) -> list[Reading]:
        return [self.readings[i] for i in indexes if self.readings[i].declined]

    @property
    def failed(self) -> Reading:
        return self.readings[self.payment[-1]]

    @property
    def payment_first_at(self) -> dt.datetime:
        return self.readings[self.payment[0]].attempt.at

    @property
    def payment_retries(self) -> int:
        return len(self.payment) - 1

    @property
    def unknown_decline(self) -> Reading | None:
        return next((r for r in self._declines(self.payment) if r.unknown), None)

    @property
    def sca_decline(self) -> Reading | None:
        return next((r for r in self._declines(self.payment) if r.sca), None)

    @property
    def retry_after(self) -> tuple[dt.datetime, str] | None:
        latest: tuple[dt.datetime, str] | None = None
        for r in self._declines(self.payment):
            until = r.retry_until
            if until is not None and r.advice is not None and (latest is None or until > latest[0]):
                latest = (until, r.advice.code)
        return latest

    def data_change_decline(self, *, skip_sca: bool) -> Reading | None:
        in_current = tuple(i for i in self.payment if i in self.current)
        for r in self._declines(in_current):
            if r.needs_data_change and not (skip_sca and r.sca):
                return r
        return None

    @property
    def hard_decline(self) -> Reading | None:
        return next((r for r in self._declines(self.current) if r.hard), None)

    def _never_retry(self) -> list[Reading]:
        return [
            r
            for i, r in enumerate(self.readings)
            if r.declined and (r.stops or (r.never_retry and i in self.current))
        ]

    @property
    def never_retry_decline(self) -> Reading | None:
        return next(iter(self._never_retry()), None)

    def latest_never_retry(self, amount: AmountKey) -> dt.datetime | None:
        times = [r.attempt.at for r in self._never_retry() if _key(r) == amount]
        return max(times, default=None)

    def declines_after(self, after: dt.datetime) -> Series:
        return Series.since(sorted(r.attempt.at for r in self.readings if r.declined), after)

    def amount_declines_after(self, amount: AmountKey, after: dt.datetime) -> Series:
        times = sorted(r.attempt.at for r in self.readings if r.declined and _key(r) == amount)
        return Series.since(times, after)

    def reattempts_after(self, amount: AmountKey, after: dt.datetime) -> Series:
        times: list[dt.datetime] = []
        declined_before = False
        for r in self.readings:
            if _key(r) != amount:
                continue
            if declined_before:
                times.append(r.attempt.at)
            declined_before = declined_before or r.declined
        return Series.since(sorted(times), after)


def _key(reading: Reading) -> AmountKey:
    return amount_key(reading.attempt.amount_minor, reading.attempt.currency)
