"""The micro-batcher: one model's bounded request queue, merged into contiguous engine calls.

A request is a float32 [n, F] block of rows plus a future. One dispatcher task per batcher copies
queued rows into a single preallocated [max_batch_rows, F] buffer (the only copy of the rows),
has the engine score the filled slice into a fresh output array, and hands each caller a view of
its own output rows. It imports neither grpc nor protobuf: the server maps the errors raised
here to status codes at its own boundary.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from forestgate.errors import DeadlineExpired, Overloaded, Unavailable

log = logging.getLogger(__name__)


class Engine(Protocol):
    """What the batcher needs of a model: rows in, scores out (engine.model.CompiledModel).

    `score` must write every row's output into `out`, [n] when output_width is 1, else
    [n, output_width]; it may be called from a thread other than the event loop's.
    """

    @property
    def num_features(self) -> int: ...

    @property
    def output_width(self) -> int: ...

    def score(self, rows: npt.NDArray[np.float32], out: npt.NDArray[np.float32]) -> None: ...


Execution = Literal["inline", "thread"]
RejectReason = Literal["overloaded", "deadline_expired", "cancelled", "unavailable"]

# bench/results/batcher.md: inline has the lower p50 in all 12 cells measured (5 us and 50 us
# engines and a compiled XGBoost bundle; 1 and 32 submitters; uvloop and asyncio), by 30-130 us:
# the hand-off to a thread and back costs two wake-ups, ~40 us of CPU per batch here.
DEFAULT_EXECUTION: Execution = "inline"


@dataclass(frozen=True, slots=True)
class BatchStats:
    """One engine call, in the terms of Triton's statistics: execution count is one per call."""

    rows: int
    requests: int
    queue_wait_ns: Sequence[int]  # per request, in batch order: enqueue -> batch formed
    compute_ns: int  # the engine call; in "thread" mode including the hand-off both ways
    formed_ns: int  # clock reading when the batch was formed
    contexts: Sequence[object]  # each request's `context`, in batch order (e.g. spans to link)
    error: Exception | None  # what the engine raised; every request of the batch got it


class BatchObserver(Protocol):
    """Receives statistics; called on the event loop and must not block. Defaults to nothing."""

    def on_batch(self, batch: BatchStats) -> None: ...

    def on_reject(self, reason: RejectReason, context: object) -> None: ...


class _Request:
    __slots__ = ("context", "deadline_ns", "enqueued_ns", "future", "n", "rows")

    def __init__(
        self,
        rows: npt.NDArray[np.float32],
        future: asyncio.Future[npt.NDArray[np.float32]],
        deadline_ns: int | None,
        enqueued_ns: int,
        context: object,
    ) -> None:
        self.rows = rows
        self.n: int = rows.shape[0]
        self.future = future
        self.deadline_ns = deadline_ns
        self.enqueued_ns = enqueued_ns
        self.context = context


class MicroBatcher:
    """Merge concurrent requests for one model into as few engine calls as the load allows.

    Dispatch is continuous: a request that finds the engine idle is computed at once, and
    whatever queues while a batch runs forms the next batch, oldest first, up to
    `max_batch_rows` rows (a request is never split). `max_queue_delay_us` > 0 lets such a
    backlog wait for more rows, until its oldest request is that old or a full batch is queued;
    it never delays a request that finds the engine idle. The wait is timed by the event
    loop in whole milliseconds, rounded up, so a backlog may wait up to 1 ms longer than set.

    The rows a caller submits are not checked again here: the scoring core validated them once
    (C-contiguous or not, float32 [n, F] with 1 <= n <= max_batch_rows). Admission is decided at
    once: a request that would take the queue past `max_queue_rows` rows raises Overloaded, and
    one arriving after `drain()` or `close()` raises Unavailable. At batch forming, requests
    whose `deadline_ns` (in `clock`'s time base) has passed get DeadlineExpired and cancelled
    ones are skipped; an engine call that raises fails only its own batch.

    `execution="inline"` (the default, measured fastest in bench/results/batcher.md) calls the
    engine on the event loop; "thread" calls it through `executor`, or through a single-thread
    executor of the batcher's own. Either way one batch is in flight at a time, so the input
    buffer is reused safely; each batch gets a fresh output array, so callers keep views of it.

    For a zero-downtime swap, route new requests to the new version's batcher and
    `await old.drain()`: the old one finishes what it accepted while the new one takes traffic.
    Fetching the batcher and calling `submit` in one step leaves no window between them.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch_rows: int = 64,
        max_queue_rows: int = 1024,
        max_queue_delay_us: int = 0,
        execution: Execution = DEFAULT_EXECUTION,
        executor: concurrent.futures.Executor | None = None,
        observer: BatchObserver | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        name: str = "model",
    ) -> None:
        _require_int("engine.num_features", engine.num_features, 1)
        _require_int("engine.output_width", engine.output_width, 1)
        _require_int("max_batch_rows", max_batch_rows, 1)
        _require_int("max_queue_rows", max_queue_rows, max_batch_rows, "max_batch_rows")
        _require_int("max_queue_delay_us", max_queue_delay_us, 0)
        if execution not in ("inline", "thread"):
            raise ValueError(f"execution must be 'inline' or 'thread', got {execution!r}")
        if executor is not None and execution != "thread":
            raise ValueError("executor is only used with execution='thread'")
        self.name = name
        self._max_batch_rows = max_batch_rows
        self._score = engine.score
        # [n] or [n, K]: the shape each batch's output array is allocated with.
        self._out_shape: tuple[int, ...] = (
            () if engine.output_width == 1 else (engine.output_width,)
        )
        self._max_queue_rows = max_queue_rows
        self._delay_ns = max_queue_delay_us * 1000
        self._owned_executor: concurrent.futures.ThreadPoolExecutor | None = None
        if execution == "thread" and executor is None:
            # One thread: a single batch is in flight per batcher, so more would idle.
            executor = self._owned_executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"batcher-{name}"
            )
        self._executor = executor
        self._observer = observer
        self._clock = clock
        self._input = np.empty((max_batch_rows, engine.num_features), dtype=np.float32)
        self._queue: deque[_Request] = deque()
        self._queue_rows = 0
        self._taken: list[_Request] = []
        self._wake = asyncio.Event()
        self._holding = False
        self._due = False
        self._accepting = True
        self._refusal = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._formed_ns = 0
        self._observer_failed = False

    @property
    def queue_rows(self) -> int:
        """Rows waiting for a batch (cancelled requests count until the dispatcher skips them)."""
        return self._queue_rows

    def start(self) -> None:
        """Start the dispatcher on the running event loop; `submit` does it on first use."""
        if self._task is not None:
            return
        if not self._accepting:
            raise Unavailable(self._refusal)
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._dispatch(), name=f"batcher {self.name}")

    async def submit(
        self,
        rows: npt.NDArray[np.float32],
        deadline_ns: int | None = None,
        context: object = None,
    ) -> npt.NDArray[np.float32]:
        """Score float32 [n, F] rows in the next batch that has room; returns [n] or [n, K].

        `rows` is read when the batch forms, so leave it unchanged until this returns.
        `deadline_ns` is a `clock` reading (monotonic ns by default) after which computing is
        pointless; `context` is passed through untouched to the observer.
        """
        if not self._accepting:
            self._notify_reject("unavailable", context)
            raise Unavailable(self._refusal)
        n: int = rows.shape[0]
        if self._queue_rows + n > self._max_queue_rows:
            self._notify_reject("overloaded", context)
            raise Overloaded(
                f"{self.name}: {self._queue_rows} rows queued, {n} more would pass "
                f"max_queue_rows={self._max_queue_rows}"
            )
        if self._task is None:
            self.start()
        assert self._loop is not None
        future: asyncio.Future[npt.NDArray[np.float32]] = self._loop.create_future()
        self._queue.append(_Request(rows, future, deadline_ns, self._clock(), context))
        self._queue_rows += n
        if not self._holding or self._queue_rows >= self._max_batch_rows:
            self._wake.set()
        return await future

    async def drain(self) -> None:
        """Refuse new requests (Unavailable), finish every queued and in-flight one, then stop."""
        self._stop("draining")
        await self._finish()

    async def close(self) -> None:
        """Refuse new requests and fail queued ones with Unavailable; a running batch finishes."""
        self._stop("closed")
        self._fail_queued()
        await self._finish()

    def _stop(self, state: str) -> None:
        if self._accepting:
            self._accepting = False
            self._refusal = f"{self.name}: batcher is {state}, not accepting requests"
        self._wake.set()

    async def _finish(self) -> None:
        if self._task is not None:
            # Shielded: cancelling whoever awaits drain() must not abandon accepted requests.
            await asyncio.shield(self._task)
        if self._owned_executor is not None:
            self._owned_executor.shutdown(wait=True)

    async def _dispatch(self) -> None:
        queue = self._queue
        inline = self._executor is None
        idle = True
        try:
            while True:
                if not queue:
                    if not self._accepting:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    idle = True
                    continue
                if not idle and self._delay_ns and self._accepting:
                    await self._hold()
                idle = False
                rows = self._form_batch()
                if rows:
                    await self._execute(rows)
                if inline and queue:
                    # Let callers take their results, and new requests join, between batches.
                    await asyncio.sleep(0)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.exception(
                    "%s: batcher dispatcher failed; the model takes no more requests", self.name
                )
            self._accepting = False
            self._refusal = f"{self.name}: batcher stopped"
            self._fail_queued()
            raise

    async def _hold(self) -> None:
        """Wait until the oldest live request is max_queue_delay_us old or a batch is full."""
        queue = self._queue
        while queue and queue[0].future.done():
            self._queue_rows -= queue[0].n
            self._notify_reject("cancelled", queue.popleft().context)
        if not queue or self._queue_rows >= self._max_batch_rows:
            return
        remaining_ns = queue[0].enqueued_ns + self._delay_ns - self._clock()
        if remaining_ns <= 0:
            return
        assert self._loop is not None
        self._due = False
        # Loop timers have millisecond resolution and uvloop rounds to the nearest one, which
        # would turn any delay under 500 us into none: round up, the same on every loop.
        timer = self._loop.call_later(-(-remaining_ns // 1_000_000) / 1000, self._on_due)
        self._holding = True
        try:
            while not self._due and self._accepting and self._queue_rows < self._max_batch_rows:
                self._wake.clear()
                await self._wake.wait()
        finally:
            self._holding = False
            timer.cancel()

    def _on_due(self) -> None:
        self._due = True
        self._wake.set()

    def _form_batch(self) -> int:
        """Move requests, oldest first, into the input buffer; returns the rows taken."""
        queue = self._queue
        buffer = self._input
        limit = self._max_batch_rows
        now = self._formed_ns = self._clock()
        rows = 0
        while queue:
            request = queue[0]
            if request.future.done():  # the caller went away
                queue.popleft()
                self._queue_rows -= request.n
                self._notify_reject("cancelled", request.context)
                continue
            if request.deadline_ns is not None and request.deadline_ns <= now:
                queue.popleft()
                self._queue_rows -= request.n
                request.future.set_exception(
                    DeadlineExpired(
                        f"{self.name}: deadline passed {(now - request.deadline_ns) // 1000} us "
                        f"before compute, after {(now - request.enqueued_ns) // 1000} us queued"
                    )
                )
                self._notify_reject("deadline_expired", request.context)
                continue
            end = rows + request.n
            if end > limit:
                break
            queue.popleft()
            self._queue_rows -= request.n
            buffer[rows:end] = request.rows
            self._taken.append(request)
            rows = end
        return rows

    async def _execute(self, rows: int) -> None:
        """Score the filled slice into a fresh output array and settle every taken future."""
        taken = self._taken
        x = self._input[:rows]
        y = np.empty((rows, *self._out_shape), dtype=np.float32)
        started = self._clock()
        error: Exception | None = None
        try:
            if self._executor is None:
                self._score(x, y)
            else:
                assert self._loop is not None
                await self._loop.run_in_executor(self._executor, self._score, x, y)
        except Exception as exc:
            error = exc
            _fail(taken, exc)
        except BaseException:
            # Cancelled mid-batch: no result will come, so nobody must be left waiting.
            _fail(taken, Unavailable(f"{self.name}: batcher stopped"))
            taken.clear()
            raise
        else:
            offset = 0
            for request in taken:
                end = offset + request.n
                if not request.future.done():
                    request.future.set_result(y[offset:end])
                offset = end
        if self._observer is not None:
            self._report(rows, self._clock() - started, error)
        taken.clear()

    def _report(self, rows: int, compute_ns: int, error: Exception | None) -> None:
        assert self._observer is not None
        taken, formed = self._taken, self._formed_ns
        stats = BatchStats(
            rows=rows,
            requests=len(taken),
            queue_wait_ns=[formed - request.enqueued_ns for request in taken],
            compute_ns=compute_ns,
            formed_ns=formed,
            contexts=[request.context for request in taken],
            error=error,
        )
        try:
            self._observer.on_batch(stats)
        except Exception:
            self._observer_broke()

    def _fail_queued(self) -> None:
        queue = self._queue
        while queue:
            request = queue.popleft()
            if not request.future.done():
                request.future.set_exception(Unavailable(self._refusal))
                self._notify_reject("unavailable", request.context)
        self._queue_rows = 0

    def _notify_reject(self, reason: RejectReason, context: object) -> None:
        if self._observer is not None:
            try:
                self._observer.on_reject(reason, context)
            except Exception:
                self._observer_broke()

    def _observer_broke(self) -> None:
        # Statistics must never fail requests; log the first failure, not one per batch.
        if not self._observer_failed:
            self._observer_failed = True
            log.exception("%s: batch observer failed; its later failures are not logged", self.name)


def _fail(requests: list[_Request], error: BaseException) -> None:
    for request in requests:
        if not request.future.done():
            request.future.set_exception(error)


def _require_int(name: str, value: object, minimum: int, minimum_name: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        bound = f"{minimum_name} ({minimum})" if minimum_name else str(minimum)
        raise ValueError(f"{name} must be an integer >= {bound}, got {value!r}")
