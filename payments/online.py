"""The online feature state: the in-process reference that the SQL extraction of training is
tested against, and the state a single-process decision API computes its rows from.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from forestgate.payments.codes import ResponseCodes
from forestgate.payments.counts import (
    CardCounts,
    Counts,
    DeclineRecord,
    RouteCounts,
    merchant_key,
    missing_decline,
    rate_keys,
    route_keys,
)
from forestgate.payments.featurespec import (
    CARD_WINDOWS_MS,
    DAY_MS,
    LONGEST_WINDOW_MS,
    RATE_WINDOW_MS,
    RETRY_HORIZON_MS,
    Answer,
    Request,
)
from forestgate.payments.routetable import RouteTable
from forestgate.payments.vectors import F32, FeatureBuilder

NEVER = -(2**62)
NO_HISTORY = CardCounts()  # a card never observed (immutable, so one instance serves all)
RateKey = tuple[str, ...]
K = TypeVar("K")
V = TypeVar("V")


class Window:
    """One key's attempt timestamps and the timestamps of its hits (approvals, or a card's
    declines), each sorted, so a late attempt is inserted where its time says."""

    __slots__ = ("hits", "ts")

    def __init__(self, ts: list[int] | None = None, hits: list[int] | None = None) -> None:
        self.ts: list[int] = ts or []
        self.hits: list[int] = hits or []

    def add(self, ts_ms: int, hit: bool) -> None:
        bisect.insort(self.ts, ts_ms)
        if hit:
            bisect.insort(self.hits, ts_ms)

    def count(self, lower_ms: int, upper_ms: int) -> Counts:
        """(attempts, hits) with lower_ms < ts <= upper_ms."""
        return _between(self.ts, lower_ms, upper_ms), _between(self.hits, lower_ms, upper_ms)

    def drop_until(self, cutoff_ms: int) -> None:
        del self.ts[: bisect.bisect_right(self.ts, cutoff_ms)]
        del self.hits[: bisect.bisect_right(self.hits, cutoff_ms)]

    @property
    def newest_ms(self) -> int:
        return self.ts[-1] if self.ts else NEVER


@dataclass(slots=True)
class CardSummary:
    """A card's running totals (kept for good: the definitions look back over all history) and
    its recent attempts (pruned to the longest window)."""

    recent: Window = field(default_factory=Window)
    approvals: int = 0
    approved_usd: float = 0.0
    last_approval_ms: int | None = None
    last_nsf_ms: int | None = None
    last_recovery_ms: int | None = None
    recoveries: int = 0
    newest: tuple[int, int] = (NEVER, -1)  # (ts, attempt_id) of the newest attempt observed
    newest_was_nsf: bool = False


@dataclass(slots=True)
class PaymentSummary:
    attempts: int = 0
    first_decline_ms: int | None = None
    newest_ms: int = NEVER


class FeatureState:
    """Online feature state: ``observe`` attempts with their answers, then ``approval`` and
    ``retry`` rows from what was observed so far.

    Order: attempts may arrive in any order (a live server learns outcomes late). Window counts
    are exact whatever the order: timestamps are inserted sorted, and a window counts the
    attempts in (anchor - window, anchor]. Running totals that commute are exact too: approvals,
    approved amount, payment attempts; last approval and last NSF are maxima, the first decline a
    minimum. One aggregate depends on order: a recovery is an approval whose card's previous
    attempt was an NSF decline. It is decided when the approval arrives, against the newest
    attempt observed so far; an attempt older than the card's newest never counts as a recovery,
    and a late attempt does not revise recoveries already counted. In (ts, attempt_id) order
    every feature equals the SQL of training (tests/features/test_online.py).

    Retry rows take the decline's payment counts as they were when the decline was observed, its
    windows at the decline's time, and the card's running totals as they are now (so they equal
    the definitions when the retry is consulted as the decline arrives, as the decision API does).

    Expiry, by event time (the watermark is the newest ts observed): a window keeps the
    timestamps after ``watermark - LONGEST_WINDOW_MS - lateness_ms``, and a key whose newest
    attempt is older than that is dropped (a card keeps its running totals). A payment is dropped
    RETRY_HORIZON_MS (14 d, the networks' retry window) after its newest attempt, a decline
    RETRY_HORIZON_MS after its own time: no retry can be consulted for them later. So window
    features are exact for an outcome up to ``lateness_ms`` late and for a retry consulted up to
    ``lateness_ms`` after its decline. Memory: the card totals, plus the attempts of the last
    LONGEST_WINDOW_MS + lateness_ms and the payments and declines of the last 14 d.

    Concurrency: every method is synchronous and never awaits, so on one asyncio event loop each
    call is atomic; the state is not thread-safe.
    """

    def __init__(
        self,
        *,
        routes: RouteTable,
        codes: ResponseCodes,
        utc_offset_s: Mapping[str, int],
        lateness_ms: int = DAY_MS,
    ) -> None:
        self.builder = FeatureBuilder(routes=routes, codes=codes, utc_offset_s=utc_offset_s)
        self.lateness_ms = lateness_ms
        self.watermark_ms = NEVER
        self.cards: dict[str, CardSummary] = {}
        # Least recently touched first, so expiry pops from the front and stops at the first key
        # still alive (touch order follows event time up to the lateness).
        self.active_cards: OrderedDict[str, CardSummary] = OrderedDict()
        self.rates: OrderedDict[RateKey, Window] = OrderedDict()
        self.payments: OrderedDict[str, PaymentSummary] = OrderedDict()
        self.declines: OrderedDict[int, DeclineRecord] = OrderedDict()

    @property
    def history_ms(self) -> int:
        return LONGEST_WINDOW_MS + self.lateness_ms

    def observe(self, request: Request, answer: Answer) -> None:
        """Add one attempt and its answer, in any order relative to earlier calls."""
        ts = request.ts_ms
        self.watermark_ms = max(self.watermark_ms, ts)
        outcome = self.builder.outcome(request, answer)
        card = self.cards.setdefault(request.card_key, CardSummary())
        _count_card(card, request, answer.approved, outcome.nsf)
        self._touch(self.active_cards, request.card_key, card)
        card.recent.add(ts, not answer.approved)
        card.recent.drop_until(self.watermark_ms - self.history_ms)
        pay = self.payments.get(request.payment_id) or PaymentSummary()
        pay.attempts += 1
        pay.newest_ms = max(pay.newest_ms, ts)
        if not answer.approved and (pay.first_decline_ms is None or ts < pay.first_decline_ms):
            pay.first_decline_ms = ts
        self._touch(self.payments, request.payment_id, pay)
        for key in rate_keys(request, request.route_id):
            window = self.rates.get(key) or Window()
            window.add(ts, answer.approved)
            window.drop_until(self.watermark_ms - self.history_ms)
            self._touch(self.rates, key, window)
        if not answer.approved:
            self.declines[request.attempt_id] = DeclineRecord(
                ts_ms=ts,
                family=outcome.family,
                code=answer.response_code,
                visa_category=outcome.visa_category,
                advice=answer.merchant_advice_code,
                attempts_so_far=pay.attempts,
                first_decline_ms=pay.first_decline_ms,
            )
        self.prune(self.watermark_ms)

    def approval(self, request: Request, route_id: str | None = None) -> F32:
        """APPROVAL_FEATURES of ``request`` at its own time, sent on ``route_id`` (default: its
        own route); the request itself must not have been observed yet."""
        rows = self.approval_rows(request, [request.route_id if route_id is None else route_id])
        row: F32 = rows[0]
        return row

    def approval_rows(self, request: Request, route_ids: Sequence[str]) -> F32:
        """[len(route_ids), len(APPROVAL_FEATURES)]: ``request`` on each of the routes."""
        return self.builder.approval_rows(
            request,
            route_ids,
            card=self.card_counts(request.card_key, anchor_ms=request.ts_ms),
            routes=[self.route_counts(request, r, anchor_ms=request.ts_ms) for r in route_ids],
            merchant=self.rate_counts(merchant_key(request), anchor_ms=request.ts_ms),
        )

    def retry(self, decline: Request, *, delay_s: int, route_id: str) -> F32:
        """RETRY_FEATURES of retrying the observed decline ``decline`` after ``delay_s`` on
        ``route_id``, as of the decline."""
        rows = self.retry_rows(decline, [(delay_s, route_id)])
        row: F32 = rows[0]
        return row

    def retry_rows(self, decline: Request, candidates: Sequence[tuple[int, str]]) -> F32:
        """[len(candidates), len(RETRY_FEATURES)] for (delay_s, route_id) candidates."""
        record = self.declines.get(decline.attempt_id)
        if record is None:
            raise missing_decline(decline.attempt_id)
        return self.builder.retry_rows(
            decline,
            candidates,
            record=record,
            card=self.card_counts(decline.card_key, anchor_ms=record.ts_ms),
            routes=[self.route_counts(decline, r, anchor_ms=record.ts_ms) for _, r in candidates],
            merchant=self.rate_counts(merchant_key(decline), anchor_ms=record.ts_ms),
        )

    def card_counts(self, card_key: str, *, anchor_ms: int) -> CardCounts:
        card = self.cards.get(card_key)
        if card is None:
            return NO_HISTORY
        n24, d24 = card.recent.count(anchor_ms - CARD_WINDOWS_MS[0], anchor_ms)
        n7, d7 = card.recent.count(anchor_ms - CARD_WINDOWS_MS[1], anchor_ms)
        return CardCounts(
            *(n24, d24, n7, d7, card.approvals, card.approved_usd),
            *(card.last_approval_ms, card.last_nsf_ms, card.last_recovery_ms, card.recoveries),
        )

    def route_counts(self, request: Request, route_id: str, *, anchor_ms: int) -> RouteCounts:
        route, issuer_route, bin_route = route_keys(request, route_id)
        lower_ms = anchor_ms - RATE_WINDOW_MS
        return RouteCounts(
            self._count(route, lower_ms, anchor_ms),
            self._count(issuer_route, lower_ms, anchor_ms),
            self._count(bin_route, lower_ms, anchor_ms),
        )

    def rate_counts(self, key: RateKey, *, anchor_ms: int) -> Counts:
        return self._count(key, anchor_ms - RATE_WINDOW_MS, anchor_ms)

    def _count(self, key: RateKey, lower_ms: int, upper_ms: int) -> Counts:
        window = self.rates.get(key)
        return (0, 0) if window is None else window.count(lower_ms, upper_ms)

    def prune(self, now_ms: int) -> None:
        """Drop what expired by ``now_ms`` (observe calls it with the watermark; a server idle
        for long may call it with its clock)."""
        window_cutoff = now_ms - self.history_ms
        retry_cutoff = now_ms - RETRY_HORIZON_MS
        while self.active_cards:
            key, card = next(iter(self.active_cards.items()))
            if card.newest[0] > window_cutoff:
                break
            card.recent = Window()
            del self.active_cards[key]
        _pop_expired(self.rates, lambda w: w.newest_ms <= window_cutoff)
        _pop_expired(self.payments, lambda p: p.newest_ms <= retry_cutoff)
        _pop_expired(self.declines, lambda d: d.ts_ms <= retry_cutoff)

    @staticmethod
    def _touch(items: OrderedDict[K, V], key: K, value: V) -> None:
        items[key] = value
        items.move_to_end(key)


def _count_card(card: CardSummary, request: Request, approved: bool, nsf: bool) -> None:
    ts, position = request.ts_ms, (request.ts_ms, request.attempt_id)
    newest = position > card.newest
    if approved:
        card.approvals += 1
        card.approved_usd += request.amount_usd
        card.last_approval_ms = _later(card.last_approval_ms, ts)
        if newest and card.newest_was_nsf:
            card.recoveries += 1
            card.last_recovery_ms = _later(card.last_recovery_ms, ts)
    if nsf:
        card.last_nsf_ms = _later(card.last_nsf_ms, ts)
    if newest:
        card.newest, card.newest_was_nsf = position, nsf


def _later(a: int | None, b: int) -> int:
    return b if a is None else max(a, b)


def _pop_expired(items: OrderedDict[K, V], expired: Callable[[V], bool]) -> None:
    while items:
        key, value = next(iter(items.items()))
        if not expired(value):
            return
        del items[key]


def _between(sorted_ts: list[int], lower_ms: int, upper_ms: int) -> int:
    return bisect.bisect_right(sorted_ts, upper_ms) - bisect.bisect_right(sorted_ts, lower_ms)


__all__ = ["CardSummary", "FeatureState", "PaymentSummary", "Window"]
