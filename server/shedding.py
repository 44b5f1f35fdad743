"""Shedding on queue time, CoDel-style: refuse work while a standing queue persists.

A queue that fills in a burst and then empties is healthy; one whose shortest wait stays above a
target for a whole interval is not, because every request then waits at least that long and the
backlog only grows. CoDel (Nichols and Jacobson, "Controlling Queue Delay", ACM Queue 2012)
detects exactly that: it watches the queue time of the requests leaving the queue, and once it
has stayed above `target` for `interval`, it sheds. Facebook's RPC queues apply the same rule
at admission (a request that would join such a queue is refused at once), which is what a
server wants: an immediate RESOURCE_EXHAUSTED beats a timeout later.

The state is written only by the thread that dequeues and read by the one that admits; a stale
read costs at most one request admitted or refused too many.
"""

from __future__ import annotations

from collections.abc import Callable


class QueueTimeShedder:
    """`observe` each dequeued request's queue time; `shedding` says whether to refuse."""

    def __init__(self, *, target_ns: int, interval_ns: int, clock: Callable[[], int]) -> None:
        if target_ns <= 0 or interval_ns <= 0:
            raise ValueError("target_ns and interval_ns must be > 0")
        self.target_ns = target_ns
        self.interval_ns = interval_ns
        self._clock = clock
        self._above_since: int | None = None  # when queue time went (and stayed) above target
        self.shedding = False
        self.episodes = 0  # times shedding started: a counter for metrics and tests

    def observe(self, queue_ns: int, now_ns: int) -> bool:
        """Record one dequeued request's queue time; True when it should be refused."""
        if queue_ns < self.target_ns:
            # Below target once: the queue drained to a healthy level.
            self._above_since = None
            self.shedding = False
            return False
        if self._above_since is None:
            self._above_since = now_ns
            return False
        if not self.shedding and now_ns - self._above_since >= self.interval_ns:
            self.shedding = True
            self.episodes += 1
        return self.shedding

    def reason(self) -> str:
        return (
            f"queue time stayed above {self.target_ns // 1000} us for "
            f"{self.interval_ns // 1_000_000} ms: shedding load"
        )
