"""The micro-batcher: one model's bounded request queue, merged into contiguous engine calls.

A request is a float32 [n, F] block of rows plus a future. The event loop only admits requests
and settles futures; an engine thread of the batcher's own takes whatever has queued, copies it
into one preallocated [max_batch_rows, F] buffer (the only copy of the rows), scores it, and
hands the results back to the loop in one call per batch. While the engine computes (the native
call releases the GIL) the loop keeps accepting calls, and they form the next batch: under load
batches grow by themselves, and at idle a request is computed at once. The thread can be pinned
to CPUs of its own (`engine_cpus`), so the model's code stays in that core's caches; that is
where batches form, because the loop then has its own core for gRPC. Unpinned, a small request
that finds nothing in flight is scored on the loop (`idle_inline_rows`), since two thread
hand-offs on a shared core cost more than the call.

Requests larger than `max_batch_rows` are scored in engine calls of their own, chunk by chunk,
with the small requests' batches served between chunks. The module imports neither grpc nor
protobuf: the server maps the errors raised here to status codes at its own boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from forestgate.errors import DeadlineExpired, Overloaded, Unavailable
from forestgate.server.shedding import QueueTimeShedder

log = logging.getLogger(__name__)

Execution = Literal["thread", "inline"]
# "invalid" is the scoring core's input check, reported through `report_refusal`.
RejectReason = Literal[
    "overloaded", "shed", "deadline_expired", "cancelled", "unavailable", "invalid"
]
F32 = npt.NDArray[np.float32]


class Engine(Protocol):
    """What the batcher needs of a model: rows in, scores out (engine.model.CompiledModel).

    `score` must write every row's output into `out`, [n] when output_width is 1, else
    [n, output_width]; it is called from the batcher's engine thread.
    """

    @property
    def num_features(self) -> int: ...

    @property
    def output_width(self) -> int: ...

    def score(self, rows: F32, out: F32) -> None: ...


@dataclass(frozen=True, slots=True)
class BatchStats:
    """One engine call, in the terms of Triton's statistics: execution count is one per call.

    formed_ns + input_ns + compute_ns + output_ns is when the batch's requests got their results.
    """

    rows: int
    requests: int
    queue_wait_ns: Sequence[int]  # per request, in batch order: enqueue -> batch formed
    compute_ns: int  # the engine call
    formed_ns: int  # clock reading when the batch was formed
    contexts: Sequence[object]  # each request's `context`, in batch order (e.g. spans to link)
    error: Exception | None  # what the engine raised; every request of the batch got it
    input_ns: int = 0  # batch formed -> engine call: copying the rows into the batch buffer
    output_ns: int = 0  # engine call done -> results handed out on the loop (the hand-off)
    settled: bool = True  # False for a large request's chunks before its last


class BatchObserver(Protocol):
    """Receives statistics on the event loop; must not block. Defaults to nothing."""

    def on_batch(self, batch: BatchStats) -> None: ...

    def on_reject(self, reason: RejectReason, context: object) -> None: ...


class _Request:
    __slots__ = ("context", "deadline_ns", "done", "enqueued_ns", "future", "n", "out", "rows")

    def __init__(
        self,
        rows: F32,
        future: asyncio.Future[F32],
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
        self.out: F32 | None = None  # a large request's own output, filled chunk by chunk
        self.done = 0  # a large request's rows scored so far


class _Batch:
    """One engine call's outcome, handed from the engine thread to the loop."""

    __slots__ = (
        "compute_ns", "error", "formed_ns", "input_ns", "refused", "rows", "settle", "taken", "y"
    )  # fmt: skip

    def __init__(self, formed_ns: int, *, settle: bool = True) -> None:
        self.formed_ns = formed_ns
        self.settle = settle  # False for a large request's chunks before its last
        self.taken: list[_Request] = []
        self.refused: list[tuple[_Request, Exception, RejectReason]] = []
        self.rows = 0
        self.y: F32 | None = None
        self.error: Exception | None = None
        self.input_ns = 0
        self.compute_ns = 0


class MicroBatcher:
    """Merge concurrent requests for one model into as few engine calls as the load allows.

    Dispatch is continuous: a request that finds the engine idle is computed at once, and
    whatever queues while a batch runs forms the next batch, oldest first, up to
    `max_batch_rows` rows (a small request is never split). `max_queue_delay_us` > 0 lets such a
    backlog wait for more rows, until its oldest request is that old or a full batch is queued;
    it never delays a request that finds the engine idle.

    The rows a caller submits are not checked again here: the scoring core validated them once
    (C-contiguous float32 [n, F], n >= 1). Admission is decided at once: a request that would
    take the queue past `max_queue_rows` rows, or that arrives while `shedder` sheds a standing
    queue, raises Overloaded; one arriving after `drain()` or `close()` raises Unavailable. When
    its batch forms, a request whose `deadline_ns` (in `clock`'s time base) has passed gets
    DeadlineExpired, a cancelled one is skipped, and one that waited through a standing queue
    is shed; an engine call that raises fails only its own batch.

    `execution="thread"` (the default) runs the engine on a thread of the batcher's own, pinned
    to `engine_cpus` when given; "inline" calls it on the event loop, which then accepts no
    calls while it computes (kept for comparison: bench/results/server.md). With an unpinned
    thread, a request of at most `idle_inline_rows` rows that finds nothing queued, running or
    awaiting its result is scored at once on the loop, from its own rows.

    `max_gather_us` > 0 lets a backlog wait for more rows while the measured gap between
    arrivals is shorter than an engine call (moving averages of both), until a full batch is
    queued, the arrivals pause for two gaps, or its oldest request is that old. Like the
    delay, it never holds a request that finds the engine idle.

    For a zero-downtime swap, route new requests to the new version's batcher and
    `await old.drain()`: the old one finishes what it accepted while the new one takes traffic.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch_rows: int = 64,
        max_queue_rows: int = 1024,
        max_queue_delay_us: int = 0,
        max_gather_us: int = 0,
        idle_inline_rows: int = 0,
        execution: Execution = "thread",
        engine_cpus: Sequence[int] = (),
        shedder: QueueTimeShedder | None = None,
        observer: BatchObserver | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        name: str = "model",
    ) -> None:
        _require_int("engine.num_features", engine.num_features, 1)
        _require_int("engine.output_width", engine.output_width, 1)
        _require_int("max_batch_rows", max_batch_rows, 1)
        _require_int("max_queue_rows", max_queue_rows, max_batch_rows, "max_batch_rows")
        _require_int("max_queue_delay_us", max_queue_delay_us, 0)
        _require_int("max_gather_us", max_gather_us, 0)
        _require_int("idle_inline_rows", idle_inline_rows, 0)
        if execution not in ("thread", "inline"):
            raise ValueError(f"execution must be 'thread' or 'inline', got {execution!r}")
        self.name = name
        self._score = engine.score
        width = engine.output_width
        self._out_shape: tuple[int, ...] = () if width == 1 else (width,)
        self._max_batch_rows = max_batch_rows
        self._max_queue_rows = max_queue_rows
        self._delay_ns = max_queue_delay_us * 1000
        self._gather_ns = max_gather_us * 1000
        # A pinned engine thread runs on a core of its own, where batches form while the loop
        # accepts calls: there the hand-off is the point, so the loop never scores.
        pinned = bool(engine_cpus)
        self._idle_inline_rows = idle_inline_rows if execution == "thread" and not pinned else 0
        # Moving averages (1/8 weight) of the gap between arrivals and of one engine call:
        # the gather step waits only while arrivals come faster than calls complete.
        self._last_arrival_ns = 0
        self._arrival_gap_ns = 0
        self._call_ns = 0
        self._execution = execution
        self._engine_cpus = tuple(engine_cpus)
        self._shedder = shedder
        self._observer = observer
        self._clock = clock
        self._input = np.empty((max_batch_rows, engine.num_features), dtype=np.float32)
        self._queue: deque[_Request] = deque()
        self._bulk: deque[_Request] = deque()
        self._current: _Request | None = None  # the large request the engine side is scoring
        # Held while requests are taken off a queue: the engine side and close() both take.
        self._taking = threading.Lock()
        # Each counter has one writer (the loop admits and closes, the engine side takes), so
        # the threads need no lock.
        self._admitted_rows = self._taken_rows = self._closed_rows = 0
        self._bulk_admitted = self._bulk_taken = 0
        self._accepting = True
        self._failing = False  # close(): the engine side refuses everything queued
        self._refusal = ""
        self._sleeping = False  # the engine side waits for work: a submit must wake it
        self._holding = False  # it waits for a backlog to fill: only a full batch wakes it
        self._idle = True  # it found no work last time: a backlog never waits after idle
        self._thread_wake = threading.Event()
        self._loop_wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._observer_failed = False
        self._in_flight = 0  # submitted requests not yet settled (read and written on the loop)

    @property
    def max_batch_rows(self) -> int:
        """The most rows one engine call takes (Triton's max_batch_size)."""
        return self._max_batch_rows

    @property
    def max_queue_delay_us(self) -> int:
        """How long a backlog may wait for more rows (Triton's max_queue_delay_microseconds)."""
        return self._delay_ns // 1000

    @property
    def queue_rows(self) -> int:
        """Rows admitted and not yet taken by the engine (cancelled ones count until skipped)."""
        queued = self._admitted_rows - self._taken_rows - self._closed_rows
        return queued + self._bulk_admitted - self._bulk_taken

    # --- the event loop's side -------------------------------------------------------------

    def start(self) -> None:
        """Start the engine side on the running event loop; `submit` does it on first use."""
        if self._loop is not None:
            return
        if not self._accepting:
            raise Unavailable(self._refusal)
        self._loop = asyncio.get_running_loop()
        self._stopped = self._loop.create_future()
        if self._execution == "thread":
            thread = threading.Thread(target=self._run_thread, name=f"engine {self.name}")
            thread.daemon = True
            thread.start()
        else:
            self._loop_wake = asyncio.Event()
            self._task = self._loop.create_task(self._run_inline(), name=f"batcher {self.name}")

    async def submit(
        self, rows: F32, deadline_ns: int | None = None, context: object = None
    ) -> F32:
        """Score float32 [n, F] rows; returns [n] or [n, K] (a view of its batch's output).

        `rows` is read when the batch forms, so leave it unchanged until this returns.
        `deadline_ns` is a `clock` reading (monotonic ns by default) after which computing is
        pointless; `context` is passed through untouched to the observer.
        """
        if not self._accepting:
            self._notify_reject("unavailable", context)
            raise Unavailable(self._refusal)
        n: int = rows.shape[0]
        bulk = n > self._max_batch_rows
        self._admit(n, bulk, context)
        loop = self._loop
        if loop is None:
            self.start()
            loop = self._loop
            assert loop is not None
        now = self._clock()
        self._arrival_gap_ns += (now - self._last_arrival_ns - self._arrival_gap_ns) >> 3
        self._last_arrival_ns = now
        if n <= self._idle_inline_rows and self._idle_now():
            return self._score_now(rows, deadline_ns, now, context)
        future: asyncio.Future[F32] = loop.create_future()
        request = _Request(rows, future, deadline_ns, now, context)
        if bulk:
            self._bulk.append(request)
            self._bulk_admitted += n
        else:
            self._queue.append(request)
            self._admitted_rows += n
        if self._sleeping and (
            not self._holding or self._admitted_rows - self._taken_rows >= self._max_batch_rows
        ):
            self._wake()
        self._in_flight += 1
        try:
            return await future
        finally:
            self._in_flight -= 1

    def _idle_now(self) -> bool:
        """True when no request is queued, being scored or awaiting its result. The engine
        thread then has nothing to call the engine for, so a call made here on the loop cannot
        overlap one of its own, and waking it would cost two thread hand-offs for one request."""
        return self._in_flight == 0 and not self._pending()

    def _score_now(self, rows: F32, deadline_ns: int | None, now: int, context: object) -> F32:
        """The idle fast path: score one request on the loop, from its own rows (no copy)."""
        if deadline_ns is not None and deadline_ns <= now:
            self._notify_reject("deadline_expired", context)
            raise DeadlineExpired(f"{self.name}: deadline passed before compute")
        y = np.empty((rows.shape[0], *self._out_shape), dtype=np.float32)
        error: Exception | None = None
        try:
            self._score(rows, y)
        except Exception as exc:
            error = exc
        compute_ns = self._clock() - now
        if self._observer is not None:
            self._observe(BatchStats(rows.shape[0], 1, [0], compute_ns, now, [context], error))
        if error is not None:
            raise error
        return y

    def _admit(self, n: int, bulk: bool, context: object) -> None:
        if bulk:
            queued = self._bulk_admitted - self._bulk_taken
            if queued and queued + n > self._max_queue_rows:
                self._notify_reject("overloaded", context)
                raise Overloaded(
                    f"{self.name}: {queued} rows of large requests queued; {n} more would pass "
                    f"max_queue_rows={self._max_queue_rows}"
                )
            return
        queued = self._admitted_rows - self._taken_rows
        if queued + n > self._max_queue_rows:
            self._notify_reject("overloaded", context)
            raise Overloaded(
                f"{self.name}: {queued} rows queued, {n} more would pass "
                f"max_queue_rows={self._max_queue_rows}"
            )
        shedder = self._shedder
        if shedder is not None and shedder.shedding and queued:
            self._notify_reject("shed", context)
            raise Overloaded(f"{self.name}: {shedder.reason()}")

    def report_refusal(self, reason: RejectReason, context: object = None) -> None:
        """Tell the observer of a request refused before it reached this batcher (the scoring
        core's input check), so the model version's statistics count it as a failure."""
        self._notify_reject(reason, context)

    def _wake(self) -> None:
        if self._loop_wake is not None:
            self._loop_wake.set()
        else:
            self._thread_wake.set()

    async def drain(self) -> None:
        """Refuse new requests (Unavailable), finish every queued and in-flight one, then stop."""
        self._stop("draining")
        await self._finish()

    async def close(self) -> None:
        """Refuse new requests and fail queued ones with Unavailable; a running batch finishes."""
        self._failing = True
        self._stop("closed")
        # Queued requests fail now, not after the running batch.
        with self._taking:
            closed = [*self._queue, *self._bulk]
            self._queue.clear()
            self._bulk.clear()
        for request in closed:
            self._closed_rows += request.n
            if not request.future.done():
                request.future.set_exception(Unavailable(self._refusal))
            self._notify_reject("unavailable", request.context)
        await self._finish()

    def _stop(self, state: str) -> None:
        if self._accepting:
            self._accepting = False
            self._refusal = f"{self.name}: batcher is {state}, not accepting requests"
        self._wake()

    async def _finish(self) -> None:
        if self._stopped is not None:
            # Shielded: cancelling whoever awaits drain() must not abandon accepted requests.
            await asyncio.shield(self._stopped)

    def _deliver(self, batch: _Batch) -> None:
        """On the loop: settle what the engine side finished, then report the batch."""
        for request, error, reason in batch.refused:
            if not request.future.done():
                request.future.set_exception(error)
            self._notify_reject(reason, request.context)
        if not batch.taken:
            return
        if batch.settle:
            _settle(batch)
        if self._observer is not None:
            self._report(batch)

    def _report(self, batch: _Batch) -> None:
        formed = batch.formed_ns
        computed = formed + batch.input_ns + batch.compute_ns
        stats = BatchStats(
            rows=batch.rows,
            requests=len(batch.taken),
            queue_wait_ns=[formed - request.enqueued_ns for request in batch.taken],
            compute_ns=batch.compute_ns,
            formed_ns=formed,
            contexts=[request.context for request in batch.taken],
            error=batch.error,
            input_ns=batch.input_ns,
            # After settling: the wait for the loop to take the batch counts here too.
            output_ns=max(0, self._clock() - computed),
            settled=batch.settle,
        )
        self._observe(stats)

    def _observe(self, stats: BatchStats) -> None:
        assert self._observer is not None
        try:
            self._observer.on_batch(stats)
        except Exception:
            self._observer_broke()

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

    # --- the engine's side: a thread of its own, or a task on the loop ------------------------

    def _run_thread(self) -> None:
        if self._engine_cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, self._engine_cpus)  # 0: this thread
        try:
            while self._wait_thread():
                if self._queue and self._holds and not self._idle and self._accepting:
                    self._hold_thread()
                self._step()
        except BaseException:
            self._crashed()
        finally:
            self._post_stopped()

    async def _run_inline(self) -> None:
        try:
            while await self._wait_inline():
                if self._queue and self._holds and not self._idle and self._accepting:
                    await self._hold_inline()
                self._step()
                # Let callers take their results, and new requests join, between batches.
                await asyncio.sleep(0)
        except BaseException as exc:
            self._crashed()
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
        finally:
            assert self._stopped is not None
            if not self._stopped.done():
                self._stopped.set_result(None)

    @property
    def _holds(self) -> bool:
        return bool(self._delay_ns or self._gather_ns)

    def _has_work(self) -> bool:
        return self._pending() or not self._accepting

    def _pending(self) -> bool:
        return bool(self._queue or self._bulk or self._current)

    def _wait_thread(self) -> bool:
        """Block until there is work; False once stopped with nothing left."""
        while not self._pending():
            if not self._accepting:
                return False
            self._sleeping = True
            self._thread_wake.clear()
            # Checked again after clear(): a submit between the test above and clear() set the
            # event before it was cleared, but its request is already queued.
            if not self._has_work():
                self._thread_wake.wait()
            self._sleeping = False
            self._idle = True
        return True

    async def _wait_inline(self) -> bool:
        assert self._loop_wake is not None
        while not self._pending():
            if not self._accepting:
                return False
            self._sleeping = True
            self._loop_wake.clear()
            await self._loop_wake.wait()
            self._sleeping = False
            self._idle = True
        return True

    def _hold_remaining_ns(self) -> int:
        """How long a backlog may still wait for company; <= 0 when it must go now."""
        queued = self._admitted_rows - self._taken_rows
        if not self._queue or queued >= self._max_batch_rows or self._failing:
            return 0
        now = self._clock()
        oldest = self._queue[0].enqueued_ns
        held = oldest + self._delay_ns - now
        if held > 0 or not self._gather_ns:
            return held
        # Gather: wait for the next arrival only while arrivals come faster than engine calls
        # (then a call saved is worth more than the wait) and the stream has not paused.
        gap = self._arrival_gap_ns
        if gap >= self._call_ns:
            return 0
        return min(oldest + self._gather_ns - now, 2 * gap - (now - self._last_arrival_ns))

    def _hold_thread(self) -> None:
        self._holding = self._sleeping = True
        try:
            while (remaining := self._hold_remaining_ns()) > 0 and self._accepting:
                self._thread_wake.clear()
                if self._hold_remaining_ns() > 0:
                    self._thread_wake.wait(remaining / 1e9)
        finally:
            self._holding = self._sleeping = False

    async def _hold_inline(self) -> None:
        assert self._loop is not None and self._loop_wake is not None
        self._holding = self._sleeping = True
        try:
            while (remaining := self._hold_remaining_ns()) > 0 and self._accepting:
                self._loop_wake.clear()
                if remaining < 1_000_000 and self._gather_ns:
                    # Under a loop timer's millisecond resolution: let the loop take the
                    # arrivals that are ready, then look again.
                    await asyncio.sleep(0)
                    continue
                # Loop timers have millisecond resolution (uvloop rounds to the nearest one):
                # round up, so a delay under 500 us still holds.
                timer = self._loop.call_later(-(-remaining // 1_000_000) / 1000, self._wake)
                try:
                    await self._loop_wake.wait()
                finally:
                    timer.cancel()
        finally:
            self._holding = self._sleeping = False

    def _step(self) -> None:
        """One unit of engine work: refuse everything (close), a batch, or a large chunk."""
        self._idle = False
        if self._failing:
            self._post(self._refuse_all(Unavailable(self._refusal), "unavailable"))
        elif self._queue:
            batch = self._form()
            if batch.rows:
                self._compute(batch, self._input[: batch.rows])
            self._post(batch)
        elif self._current is not None or self._bulk:
            self._post(self._bulk_chunk())

    def _form(self) -> _Batch:
        """Take requests, oldest first, into the input buffer while the batch has room."""
        queue, buffer, limit = self._queue, self._input, self._max_batch_rows
        now = self._clock()
        batch = _Batch(now)
        rows = 0
        while True:
            with self._taking:
                if not queue or rows + queue[0].n > limit:
                    break
                request = queue.popleft()
            self._taken_rows += request.n
            refusal = self._refusal_at(request, now)
            if refusal is not None:
                batch.refused.append(refusal)
                continue
            end = rows + request.n
            buffer[rows:end] = request.rows
            batch.taken.append(request)
            rows = end
        batch.rows = rows
        return batch

    def _refusal_at(
        self, request: _Request, now: int
    ) -> tuple[_Request, Exception, RejectReason] | None:
        """Why a dequeued request is not computed: cancelled, expired or shed; None: compute."""
        if request.future.done():  # the caller went away
            return request, Unavailable("cancelled"), "cancelled"
        if request.deadline_ns is not None and request.deadline_ns <= now:
            error = DeadlineExpired(
                f"{self.name}: deadline passed {(now - request.deadline_ns) // 1000} us before "
                f"compute, after {(now - request.enqueued_ns) // 1000} us queued"
            )
            return request, error, "deadline_expired"
        shedder = self._shedder
        if shedder is not None and shedder.observe(now - request.enqueued_ns, now):
            return request, Overloaded(f"{self.name}: {shedder.reason()}"), "shed"
        return None

    def _compute(self, batch: _Batch, x: F32) -> None:
        y = np.empty((x.shape[0], *self._out_shape), dtype=np.float32)
        started = self._clock()
        batch.input_ns = started - batch.formed_ns
        try:
            self._score(x, y)
        except Exception as exc:
            batch.error = exc
        except BaseException:
            batch.error = Unavailable(f"{self.name}: batcher stopped")
            self._post(batch)
            raise
        batch.compute_ns = self._clock() - started
        self._call_ns += (batch.compute_ns - self._call_ns) >> 3
        batch.y = y

    def _bulk_chunk(self) -> _Batch:
        """The next chunk of the oldest large request, scored into its own output array."""
        now = self._clock()
        request = self._current
        if request is None:
            with self._taking:
                if not self._bulk:
                    return _Batch(now)  # close() took it
                request = self._bulk.popleft()
            refusal = self._refusal_at(request, now)
            if refusal is not None:
                self._bulk_taken += request.n
                batch = _Batch(now)
                batch.refused.append(refusal)
                return batch
            request.out = np.empty((request.n, *self._out_shape), dtype=np.float32)
            self._current = request
        start = request.done
        end = min(request.n, start + self._max_batch_rows)
        batch = _Batch(now, settle=end == request.n)
        batch.taken.append(request)
        batch.rows = end - start
        self._compute(batch, request.rows[start:end])
        assert request.out is not None and batch.y is not None
        request.out[start:end] = batch.y
        request.done = end
        self._bulk_taken += end - start
        if batch.error is not None or batch.settle:
            self._current = None
            self._bulk_taken += request.n - end
            batch.settle = True
            batch.y = request.out
        return batch

    def _refuse_all(self, error: Exception, reason: RejectReason) -> _Batch:
        batch = _Batch(self._clock())
        with self._taking:
            small, large = list(self._queue), list(self._bulk)
            self._queue.clear()
            self._bulk.clear()
        if self._current is not None:
            large.append(self._current)
            self._current = None
        for request in small:
            self._taken_rows += request.n
        for request in large:
            self._bulk_taken += request.n - request.done
        batch.refused.extend((request, error, reason) for request in [*small, *large])
        return batch

    def _post(self, batch: _Batch) -> None:
        """Hand a batch to the loop: a direct call inline, one wake-up per batch from a thread."""
        if self._execution == "inline":
            self._deliver(batch)
            return
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
            self._loop.call_soon_threadsafe(self._deliver, batch)

    def _post_stopped(self) -> None:
        stopped = self._stopped
        assert self._loop is not None and stopped is not None
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(
                lambda: None if stopped.done() else stopped.set_result(None)
            )

    def _crashed(self) -> None:
        log.exception("%s: batcher engine side failed; the model takes no more requests", self.name)
        self._accepting = False
        self._refusal = f"{self.name}: batcher stopped"
        self._post(self._refuse_all(Unavailable(self._refusal), "unavailable"))


def _settle(batch: _Batch) -> None:
    """Give each request its rows of the output (a view), or the batch's error."""
    if batch.error is not None:
        for request in batch.taken:
            if not request.future.done():
                request.future.set_exception(batch.error)
        return
    y = batch.y
    assert y is not None
    if len(batch.taken) == 1:
        request = batch.taken[0]
        if not request.future.done():
            request.future.set_result(y if request.out is None else request.out)
        return
    offset = 0
    for request in batch.taken:
        end = offset + request.n
        if not request.future.done():
            request.future.set_result(y[offset:end])
        offset = end


def _require_int(name: str, value: object, minimum: int, minimum_name: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        bound = f"{minimum_name} ({minimum})" if minimum_name else str(minimum)
        raise ValueError(f"{name} must be an integer >= {bound}, got {value!r}")
