"""The tally: a card+merchant history folded, attempt by attempt in time order, into the answers
the rules ask for (``evidence.Evidence``), with the times the rolling windows need.

A fold, so the cost of adding an attempt and of reading an answer does not grow with the
history. "First" answers (the first hard decline on the current credential, ...) are kept with
the credential epoch they belong to: an attempt sent with changed card data opens a new epoch and
so retires every earlier answer at once, without a sweep.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from forestgate.errors import InvalidInput
from forestgate.payments.codes import ResponseCodes
from forestgate.payments.evidence import AmountKey, Reading, amount_key
from forestgate.payments.history import Attempt

_ATTEMPT_FIELDS = tuple(f.name for f in fields(Attempt))
Epoched = tuple[int, Reading]  # (credential epoch, the first such decline in it)


def _first_in_epoch(kept: Epoched | None, reading: Reading, epoch: int) -> Epoched:
    return kept if kept is not None and kept[0] == epoch else (epoch, reading)


@dataclass(slots=True)
class PaymentTally:
    """One payment's running facts, or one amount's declines since its last approval (the failed
    payment of an action that names none)."""

    first_at: dt.datetime
    attempts: int
    last: Reading
    unknown: Reading | None = None  # H11: first decline with an unknown code or advice code
    sca: Reading | None = None  # H7: first SCA soft decline
    data_change: Epoched | None = None  # H3: first decline asking for new card data
    data_change_not_sca: Epoched | None = None  # H3 for a 3DS step-up, which lifts SCA ones
    retry_after: tuple[dt.datetime, str] | None = None  # H5: latest MAC delay end, its code

    @classmethod
    def start(cls, reading: Reading, epoch: int) -> PaymentTally:
        tally = cls(reading.attempt.at, 0, reading)
        tally.add(reading, epoch)
        return tally

    def add(self, reading: Reading, epoch: int) -> None:
        self.attempts += 1
        self.last = reading
        if not reading.declined:
            return
        if reading.unknown and self.unknown is None:
            self.unknown = reading
        if reading.sca and self.sca is None:
            self.sca = reading
        if reading.needs_data_change:
            self.data_change = _first_in_epoch(self.data_change, reading, epoch)
            if not reading.sca:
                self.data_change_not_sca = _first_in_epoch(self.data_change_not_sca, reading, epoch)
        until = reading.retry_until
        # Strictly later only: among equal delays the first decline names the code, as in a scan.
        later = until is not None and (self.retry_after is None or until > self.retry_after[0])
        if later and until is not None and reading.advice is not None:
            self.retry_after = (until, reading.advice.code)


@dataclass(slots=True)
class Tally:
    """Every attempt of one card at one merchant, folded. ``retention`` is the longest window any
    rule looks back over; older window times are dropped, and a payment silent for longer starts
    afresh (its retries were refused by the internal budget long before)."""

    retention: dt.timedelta
    seq: int = 0  # attempts folded: orders "first" answers across kinds
    epoch: int = 0  # credential epochs opened by attempts sent with changed card data
    newest: Reading | None = None
    cancels_recurring: bool = False
    stop: tuple[int, Reading] | None = None  # H4: (seq, first decline stopping the schedule)
    never: tuple[int, int, Reading] | None = None  # H4: (epoch, seq, first MAC 03/21 of epoch)
    hard: Epoched | None = None  # H1
    stop_latest: dict[AmountKey, dt.datetime] = field(default_factory=dict)
    never_latest: dict[AmountKey, tuple[int, dt.datetime]] = field(default_factory=dict)
    declines: list[dt.datetime] = field(default_factory=list)  # H6, 24 h
    amount_declines: dict[AmountKey, list[dt.datetime]] = field(default_factory=dict)  # H6, 30 d
    reattempts: dict[AmountKey, list[dt.datetime]] = field(default_factory=dict)  # H2
    declined_amounts: set[AmountKey] = field(default_factory=set)  # H2: later ones are reattempts
    payments: dict[str, PaymentTally] = field(default_factory=dict)
    chains: dict[AmountKey, PaymentTally] = field(default_factory=dict)

    def add(self, reading: Reading) -> None:
        """Fold one attempt, at or after every attempt folded so far."""
        attempt = reading.attempt
        key = amount_key(attempt.amount_minor, attempt.currency)
        self.seq += 1
        if attempt.credential_changed:
            self.epoch += 1
        self.newest = reading
        if key in self.declined_amounts:
            self.reattempts.setdefault(key, []).append(attempt.at)
        if attempt.payment_id is not None:
            self._add_to_payment(attempt.payment_id, reading)
        if attempt.approved:
            self.chains.pop(key, None)
        elif key in self.chains:
            self.chains[key].add(reading, self.epoch)
        else:
            self.chains[key] = PaymentTally.start(reading, self.epoch)
        if reading.declined:
            self._add_decline(reading, key)

    def _add_to_payment(self, payment_id: str, reading: Reading) -> None:
        payment = self.payments.get(payment_id)
        if payment is None or payment.last.attempt.at < reading.attempt.at - self.retention:
            self.payments[payment_id] = PaymentTally.start(reading, self.epoch)
        else:
            payment.add(reading, self.epoch)

    def _add_decline(self, reading: Reading, key: AmountKey) -> None:
        at = reading.attempt.at
        self.declined_amounts.add(key)
        self.declines.append(at)
        self.amount_declines.setdefault(key, []).append(at)
        if reading.stops:
            self.cancels_recurring = True
            self.stop = self.stop or (self.seq, reading)
            self.stop_latest[key] = at
        if reading.never_retry:
            if self.never is None or self.never[0] != self.epoch:
                self.never = (self.epoch, self.seq, reading)
            self.never_latest[key] = (self.epoch, at)
        if reading.hard:
            self.hard = _first_in_epoch(self.hard, reading, self.epoch)

    def prune(self) -> None:
        """Drop what no window can reach any more: times older than the retention before the
        newest attempt, and payments silent for as long."""
        if self.newest is None:
            return
        before = self.newest.attempt.at - self.retention
        del self.declines[: bisect.bisect_left(self.declines, before)]
        for times_by_amount in (self.amount_declines, self.reattempts):
            for key in list(times_by_amount):
                times = times_by_amount[key]
                del times[: bisect.bisect_left(times, before)]
                if not times:
                    del times_by_amount[key]
        self.stop_latest = {k: at for k, at in self.stop_latest.items() if at >= before}
        self.never_latest = {k: v for k, v in self.never_latest.items() if v[1] >= before}
        self.payments = {k: p for k, p in self.payments.items() if p.last.attempt.at >= before}

    def copy(self) -> Tally:
        """An independent copy (readings are immutable and shared)."""
        return replace(
            self,
            stop_latest=dict(self.stop_latest),
            never_latest=dict(self.never_latest),
            declines=list(self.declines),
            amount_declines={k: list(v) for k, v in self.amount_declines.items()},
            reattempts={k: list(v) for k, v in self.reattempts.items()},
            declined_amounts=set(self.declined_amounts),
            payments={k: replace(p) for k, p in self.payments.items()},
            chains={k: replace(p) for k, p in self.chains.items()},
        )


# -- plain JSON-able data, for snapshots and external stores --------------------------------------
# A tagged encoding: JSON has no datetimes, tuples, sets or compound keys. Readings are stored as
# their attempts and classified again on load, under the rules the loader is given.


def encode(value: object) -> object:
    """``value`` (a Tally or any part of one) as plain JSON-able data."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    for kind, tag, parts in _ENCODERS:
        if isinstance(value, kind):
            return {tag: parts(value)}
    raise InvalidInput(f"cannot encode {type(value).__name__} in a ledger state")


def _reading_data(reading: Reading) -> dict[str, object]:
    attempt = reading.attempt
    return {
        **{name: getattr(attempt, name) for name in _ATTEMPT_FIELDS},
        "at": attempt.at.isoformat(),
    }


def _fields_data(value: Any) -> dict[str, object]:
    return {f.name: encode(getattr(value, f.name)) for f in fields(value)}


_ENCODERS: tuple[tuple[type | tuple[type, ...], str, Callable[[Any], object]], ...] = (
    (dt.datetime, "$t", lambda v: v.isoformat()),
    (dt.timedelta, "$d", lambda v: v.total_seconds()),
    (Reading, "$a", _reading_data),
    (Tally, "$tally", _fields_data),
    (PaymentTally, "$payment", _fields_data),
    (tuple, "$tuple", lambda v: [encode(x) for x in v]),
    ((set, frozenset), "$set", lambda v: sorted((encode(x) for x in v), key=repr)),
    (dict, "$map", lambda v: [[encode(k), encode(x)] for k, x in v.items()]),
)


def decode(data: object, codes: ResponseCodes) -> Any:
    """The inverse of ``encode``; InvalidInput on anything it did not write."""
    if isinstance(data, list):
        return [decode(v, codes) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) != 1:
        raise InvalidInput(f"malformed ledger state: {sorted(data)!r}")
    ((tag, body),) = data.items()
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise InvalidInput(f"malformed ledger state: unknown tag {tag!r}")
    try:
        return decoder(body, codes)
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidInput(f"malformed ledger state under {tag!r}: {exc}") from exc


def _reading(body: Any, codes: ResponseCodes) -> Reading:
    return Reading.of(codes, Attempt(**{**body, "at": dt.datetime.fromisoformat(body["at"])}))


_DECODERS: dict[str, Callable[[Any, ResponseCodes], object]] = {
    "$t": lambda body, codes: dt.datetime.fromisoformat(body),
    "$d": lambda body, codes: dt.timedelta(seconds=body),
    "$a": _reading,
    "$tally": lambda body, codes: Tally(**{k: decode(v, codes) for k, v in body.items()}),
    "$payment": lambda body, codes: PaymentTally(**{k: decode(v, codes) for k, v in body.items()}),
    "$tuple": lambda body, codes: tuple(decode(v, codes) for v in body),
    "$set": lambda body, codes: {decode(v, codes) for v in body},
    "$map": lambda body, codes: {decode(k, codes): decode(v, codes) for k, v in body},
}
