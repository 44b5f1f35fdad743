"""The ledger: the incremental guardrail of one card at one merchant. Record each attempt once as
its outcome arrives; check any number of candidate actions at a cost that does not grow with the
history, with the verdict ``guardrail.check`` gives over the same attempts.

Equivalence: for attempts recorded in any order the ledger accepts, ``Ledger.check(action, now)``
equals ``guardrail.check(action, History(all recorded attempts), rules, now)``, field for field,
except for an action naming a payment with no attempt inside the retention (the longest window a
rule looks back, 30 days with the packaged rules): the ledger has forgotten it and answers
``no_decline``, where the full check refuses it too (by the internal budget, whose window is
shorter, or an earlier permanent rule); and such a payment's next attempt starts it afresh.

Late outcomes: an attempt up to ``reorder_window`` older than the newest one is filed in its
place (the tally is refolded from a settled copy); an older one is refused with InvalidInput.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from typing import Any

from forestgate.errors import InvalidInput
from forestgate.payments.action import Action
from forestgate.payments.evidence import AmountKey, Reading, Series, amount_key
from forestgate.payments.guardrail import Rules, Verdict, judge, require_decision_time
from forestgate.payments.history import Attempt
from forestgate.payments.limits import Limits
from forestgate.payments.tally import PaymentTally, Tally, decode, encode

STATE_FORMAT = 1
DEFAULT_REORDER_WINDOW = dt.timedelta(hours=24)


def retention(rules: Rules) -> dt.timedelta:
    """The longest any rule looks back, on any date: older attempts only count through running
    totals (first declines, declined amounts, chains), never through their times."""
    limits = rules.limits
    days = [30]  # H6's 30-day count is fixed in the rulebook
    for timeline in (
        limits.visa_window_days,
        limits.mastercard_never_retry_days,
        limits.internal_window_days,
    ):
        days += [period.value for period in timeline.periods]
    delays = [a.retry_after for a in rules.codes.advice.values() if a.retry_after is not None]
    return max([dt.timedelta(days=max(days)), dt.timedelta(hours=24), *delays])


@dataclass(frozen=True, slots=True)
class _View:
    """``Evidence`` read from a tally, for one action and its failed payment."""

    action: Action
    limits: Limits
    day: dt.date
    tally: Tally
    payment: PaymentTally

    @property
    def failed(self) -> Reading:
        return self.payment.last

    @property
    def payment_first_at(self) -> dt.datetime:
        return self.payment.first_at

    @property
    def payment_retries(self) -> int:
        return self.payment.attempts - 1

    @property
    def unknown_decline(self) -> Reading | None:
        return self.payment.unknown

    @property
    def sca_decline(self) -> Reading | None:
        return self.payment.sca

    @property
    def retry_after(self) -> tuple[dt.datetime, str] | None:
        return self.payment.retry_after

    def _current(self, epoch: int) -> bool:
        """Whether answers of ``epoch`` are on the current credential (none are when the action
        itself changes the card data)."""
        return epoch == self.tally.epoch and not self.action.credential_changed

    def data_change_decline(self, *, skip_sca: bool) -> Reading | None:
        kept = self.payment.data_change_not_sca if skip_sca else self.payment.data_change
        return kept[1] if kept is not None and self._current(kept[0]) else None

    @property
    def hard_decline(self) -> Reading | None:
        kept = self.tally.hard
        return kept[1] if kept is not None and self._current(kept[0]) else None

    @property
    def never_retry_decline(self) -> Reading | None:
        candidates = [self.tally.stop] if self.tally.stop else []
        never = self.tally.never
        if never is not None and self._current(never[0]):
            candidates.append((never[1], never[2]))
        return min(candidates, key=lambda kept: kept[0])[1] if candidates else None

    def latest_never_retry(self, amount: AmountKey) -> dt.datetime | None:
        times = [self.tally.stop_latest.get(amount)]
        never = self.tally.never_latest.get(amount)
        if never is not None and self._current(never[0]):
            times.append(never[1])
        return max((t for t in times if t is not None), default=None)

    def declines_after(self, after: dt.datetime) -> Series:
        return Series.since(self.tally.declines, after)

    def amount_declines_after(self, amount: AmountKey, after: dt.datetime) -> Series:
        return Series.since(self.tally.amount_declines.get(amount, ()), after)

    def reattempts_after(self, amount: AmountKey, after: dt.datetime) -> Series:
        return Series.since(self.tally.reattempts.get(amount, ()), after)


class Ledger:
    """The guardrail's running state for one card key at one merchant.

    ``record`` each attempt once its outcome is known (any route, any payment); ``check`` each
    candidate action. Not thread-safe: one owner per card and merchant.
    """

    def __init__(
        self,
        card_key: str,
        merchant_id: str,
        rules: Rules,
        *,
        reorder_window: dt.timedelta = DEFAULT_REORDER_WINDOW,
    ) -> None:
        self.card_key = card_key
        self.merchant_id = merchant_id
        self.rules = rules
        self.reorder_window = reorder_window
        # ``_settled`` folds every attempt older than the reorder window; ``_recent`` holds the
        # younger ones raw and sorted, so a late one can still be filed in its place; ``_tally``
        # folds both and answers the checks.
        self._settled = Tally(retention(rules))
        self._recent: list[Reading] = []
        self._tally = self._settled.copy()

    def record(self, attempt: Attempt) -> None:
        """File one attempt. InvalidInput if it is of another card or merchant, or older than the
        reorder window allows."""
        if attempt.card_key != self.card_key or attempt.merchant_id != self.merchant_id:
            raise InvalidInput(
                f"Ledger of card {self.card_key} at merchant {self.merchant_id} got an "
                f"attempt of card {attempt.card_key} at merchant {attempt.merchant_id}"
            )
        settled = self._settled.newest
        if settled is not None and attempt.at < settled.attempt.at:
            raise InvalidInput(
                f"attempt at {attempt.at.isoformat()} arrived too late: attempts up to "
                f"{settled.attempt.at.isoformat()} are settled (reorder window "
                f"{self.reorder_window})"
            )
        reading = Reading.of(self.rules.codes, attempt)
        # After any attempt at the same instant: a History sorts stably, in arrival order.
        place = bisect.bisect_right(self._recent, attempt.at, key=lambda r: r.attempt.at)
        self._recent.insert(place, reading)
        if place == len(self._recent) - 1:
            self._tally.add(reading)
        else:
            self._tally = self._settled.copy()
            for late in self._recent:
                self._tally.add(late)
        self._settle()

    def _settle(self) -> None:
        newest = self._recent[-1].attempt.at
        settled = bisect.bisect_left(
            self._recent, newest - self.reorder_window, key=lambda r: r.attempt.at
        )
        for reading in self._recent[:settled]:
            self._settled.add(reading)
        del self._recent[:settled]
        if settled:
            self._settled.prune()
        self._tally.prune()

    @property
    def newest_at(self) -> dt.datetime | None:
        """When the latest recorded attempt was sent."""
        newest = self._tally.newest
        return None if newest is None else newest.attempt.at

    def check(self, action: Action, now: dt.datetime) -> Verdict:
        """``guardrail.check(action, history, rules, now)`` over the recorded attempts."""
        require_decision_time(action, now, self.newest_at)
        tally = self._tally
        payment = self._payment(action)
        if payment is None:
            return judge(action, None, tally.cancels_recurring, now)
        day = action.at.astimezone(dt.UTC).date()
        view = _View(action, self.rules.limits, day, tally, payment)
        return judge(action, view, tally.cancels_recurring, now)

    def _payment(self, action: Action) -> PaymentTally | None:
        """The failed payment ``action`` retries (see ``facts.payment_of``)."""
        tally = self._tally
        if action.payment_id is not None:
            return tally.payments.get(action.payment_id)
        if tally.newest is None:
            return None
        failed = tally.newest.attempt
        if failed.payment_id is not None:
            return tally.payments[failed.payment_id]
        return tally.chains.get(amount_key(failed.amount_minor, failed.currency))

    def to_state(self) -> dict[str, Any]:
        """Plain JSON-able data: the settled tally and the recent attempts."""
        return {
            "format": STATE_FORMAT,
            "rules_version": self.rules.version,
            "card_key": self.card_key,
            "merchant_id": self.merchant_id,
            "reorder_window_s": self.reorder_window.total_seconds(),
            "settled": encode(self._settled),
            "recent": encode(self._recent),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], rules: Rules) -> Ledger:
        """The ledger ``to_state`` described. InvalidInput if the state is of another format or
        was built under other rules (rebuild it by recording the attempts again)."""
        if state.get("format") != STATE_FORMAT:
            raise InvalidInput(f"ledger state format {state.get('format')!r}, not {STATE_FORMAT}")
        if state.get("rules_version") != rules.version:
            raise InvalidInput(
                f"ledger state built under rules {state.get('rules_version')!r}, "
                f"not {rules.version!r}: record its attempts again"
            )
        window = dt.timedelta(seconds=float(state["reorder_window_s"]))
        ledger = cls(state["card_key"], state["merchant_id"], rules, reorder_window=window)
        settled = decode(state["settled"], rules.codes)
        if not isinstance(settled, Tally):
            raise InvalidInput("malformed ledger state: 'settled' is not a tally")
        settled.retention = retention(rules)
        ledger._settled = settled
        ledger._recent = list(decode(state["recent"], rules.codes))
        ledger._tally = settled.copy()
        for reading in ledger._recent:
            ledger._tally.add(reading)
        ledger._tally.prune()
        return ledger
