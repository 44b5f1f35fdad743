"""Runner: one process's share of a run, as asyncio workers on grpc.aio channels.

Closed loop (no rate): each worker sends its next call when the previous answer arrives, and
latency runs from send to answer. Open loop (--rps or a step/line load schedule): call h is due
at the schedule's time whatever the answers do; a free worker sends it (or, with --async, a new
task does), and latency runs from the *due* time, so a server that stalls shows the wait of
every call queued behind it instead of hiding it (no coordinated omission). Due times wake the
loop through a timerfd (alarm.py), since event-loop timers tick in whole milliseconds.

Requests are pre-serialized (identity serializers; responses are not parsed), and a shard of
several processes takes every procs-th request number so numbering and round-robin stay global.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from forestgate.clients.load.alarm import Alarm, clock
from forestgate.clients.load.channels import connect, open_channel
from forestgate.clients.load.data import CallInputs
from forestgate.clients.load.options import LoadOptions
from forestgate.clients.load.results import CLOSING, Recorder, RunResult, go_error, status_number
from forestgate.clients.load.schedule import RateSchedule, WorkerSchedule

Ticket = tuple[int, int]  # (request number, due time in ns)


@dataclass(frozen=True)
class Shard:
    """This process's part of the run: request numbers index, index + count, ..."""

    index: int = 0
    count: int = 1

    def share(self, total: int) -> int:
        return total // self.count + (1 if self.index < total % self.count else 0)


class Slot:
    __slots__ = ("call", "connection", "stopped", "waiter", "worker_id")

    def __init__(self, worker_id: str, connection: int) -> None:
        self.worker_id = worker_id
        self.connection = connection
        self.call: Any = None
        self.stopped = False
        self.waiter: asyncio.Future[Ticket | None] | None = None


class Runner:
    def __init__(self, options: LoadOptions, inputs: CallInputs, shard: Shard = Shard()) -> None:
        self.o = options
        self.inputs = inputs
        self.shard = shard
        self.recorder = Recorder()
        self.rate = RateSchedule.from_options(options)
        self.paced = self.rate.paced
        self.channels: list[grpc.aio.Channel] = []
        self.calls: list[Any] = []
        self.end_reason = "normal"
        self.failure = ""
        self._timeout_s = options.timeout_ns / 1e9 if options.timeout_ns else None
        self._compression = grpc.Compression.Gzip if options.enable_compression else None
        self._limit = options.count_limit
        self._next = shard.index
        self._slots: list[Slot] = []
        self._live = 0
        self._async_calls: set[Any] = set()
        self._async_live = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._done: asyncio.Future[None] | None = None
        self._alarm: Alarm | None = None
        self._backlog: deque[Ticket] = deque()
        self._waiting: deque[asyncio.Future[Ticket | None]] = deque()
        self._pending: Ticket | None = None
        self._dues: Iterator[Ticket] = iter(())
        self._scheduled = 0
        self._last_due_ns = 0
        self._exhausted = False
        self._workers_pending = True
        self._stopping = False
        self._closing = False
        self._ignore = False
        self._closing_id = self.recorder.error_id(CLOSING)
        self._errors: dict[tuple[grpc.StatusCode, str], int] = {}
        self.start_ns = 0
        self._early_stop = ""

    async def open(self) -> None:
        """Open and check every connection; a LoadError here means no load was sent."""
        workers = self.shard.share(self.o.concurrency) if self.o.concurrency else 1
        count = max(1, min(self.shard.share(self.o.connections), workers))
        self.channels = [open_channel(self.o) for _ in range(count)]
        try:
            await asyncio.gather(*(connect(c, self.o) for c in self.channels))
        except BaseException:
            await self.close()
            raise
        path = self.inputs.schema.path
        # Identity serializers: requests go out as the bytes data.py built, answers stay bytes.
        self.calls = [
            c.unary_unary(  # type: ignore[call-arg]
                path, request_serializer=None, response_deserializer=None, _registered_method=True
            )
            for c in self.channels
        ]

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close(None)
        self.channels = []

    async def run(self, start_ns: int = 0) -> RunResult:
        loop = asyncio.get_running_loop()
        self._done = done = loop.create_future()
        if start_ns:
            await asyncio.sleep(max(0, start_ns - clock()) / 1e9)
        self.start_ns = start_ns or clock()
        start_wall_ns = time.time_ns() - (clock() - self.start_ns)
        start_cpu_ns = time.process_time_ns()
        limit_handle = None
        if self.o.time_limit_ns:
            left_s = (self.start_ns + self.o.time_limit_ns - clock()) / 1e9
            limit_handle = loop.call_later(max(0.0, left_s), self.stop, "timeout")
        self._alarm = Alarm(loop, self._on_alarm) if self.paced else None
        if self._alarm is not None:
            self._dues = self._shard_dues()
            self._advance()
            if self._pending is None:
                self._exhaust()
            else:
                self._alarm.set(self._pending[1])
        schedule = loop.create_task(self._schedule_workers())
        if self._early_stop:
            self.stop(self._early_stop)
        try:
            await done
        finally:
            finish_ns = clock()
            cpu_ns = time.process_time_ns() - start_cpu_ns
            schedule.cancel()
            if limit_handle is not None:
                limit_handle.cancel()
            if self._alarm is not None:
                self._alarm.close()
        return RunResult(
            calls=self.recorder.result(),
            start_ns=self.start_ns,
            start_wall_ns=start_wall_ns,
            finish_ns=finish_ns,
            end_reason=self.end_reason,
            open_loop=self.paced,
            scheduled=self._scheduled,
            last_due_ns=self._last_due_ns,
            failure=self.failure,
            cpu_ns=cpu_ns,
        )

    def stop(self, reason: str) -> None:
        """End the run: no new calls; in-flight ones per --duration-stop (close, wait, ignore)."""
        if self._done is None:  # before run(): run() stops at once
            self._early_stop = reason
            return
        if self._stopping or self._done.done():
            return
        self._stopping = True
        self.end_reason = reason
        self._workers_pending = False
        if self._alarm is not None:
            self._alarm.cancel()
        self._wake_all()
        if self.o.duration_stop != "wait":
            self._closing = True
            self._ignore = self.o.duration_stop == "ignore"
            for slot in self._slots:
                if slot.call is not None:
                    slot.call.cancel()
            for call in list(self._async_calls):
                call.cancel()
        self._check_done()

    # Workers

    async def _schedule_workers(self) -> None:
        local = self.shard.share(self.o.concurrency)
        for at_ns, delta in WorkerSchedule.from_options(self.o, local).events():
            await asyncio.sleep(max(0, self.start_ns + at_ns - clock()) / 1e9)
            if self._stopping:
                return
            if self.o.async_:
                continue  # --async: calls are tasks, not workers
            if delta > 0:
                for _ in range(delta):
                    self._add_worker()
            else:
                active = [s for s in self._slots if not s.stopped]
                for slot in active[:-delta]:
                    slot.stopped = True
                    if slot.waiter is not None and not slot.waiter.done():
                        slot.waiter.set_result(None)
        self._workers_pending = False
        self._check_done()

    def _add_worker(self) -> None:
        local = len(self._slots)
        connection = local % len(self.calls)
        worker = self.shard.index + self.shard.count * local
        conn = self.shard.index + self.shard.count * connection
        worker_id = f"{self.o.name}:g{worker}c{conn}" if self.o.name else f"g{worker}c{conn}"
        slot = Slot(worker_id, connection)
        self._slots.append(slot)
        self._live += 1
        task = asyncio.get_running_loop().create_task(self._worker(slot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _worker(self, slot: Slot) -> None:
        try:
            while not slot.stopped and not self._stopping:
                ticket = await self._ticket(slot)
                if ticket is None:
                    break
                request = self._request(ticket[0], slot)
                if request is None or not await self._send(slot, *request, ticket):
                    break
        finally:
            slot.call = None
            self._live -= 1
            self._check_done()

    async def _ticket(self, slot: Slot) -> Ticket | None:
        """The next call's number and due time (None: stop); unpaced calls are due when sent."""
        if self.paced:
            return self._backlog.popleft() if self._backlog else await self._take(slot)
        n = self._next
        if n >= self._limit:
            self._exhausted = True
            return None
        self._next = n + self.shard.count
        return n, -1

    def _request(self, n: int, slot: Slot) -> tuple[bytes, Any] | None:
        """Call n's payload and metadata; a template that fails stops the run (None)."""
        inputs = self.inputs
        if not inputs.templated:
            return inputs.build(n, slot.worker_id)  # a lookup: the payloads are pre-serialized
        try:
            return inputs.build(n, slot.worker_id)
        except Exception as exc:
            self.failure = f"call {n}: {exc}"
            self.stop("cancel")
            return None

    async def _send(self, slot: Slot, payload: bytes, metadata: Any, ticket: Ticket) -> bool:
        """Make one call and record it; False when the worker should stop."""
        sent = clock()
        due = ticket[1] if self.paced else sent
        slot.call = pending = self.calls[slot.connection](
            payload, timeout=self._timeout_s, metadata=metadata, compression=self._compression
        )
        try:
            await pending
            status = error = 0
        except grpc.aio.AioRpcError as exc:
            status, error = self._failed(exc)
        except asyncio.CancelledError:
            if not self._closing:
                raise
            if self._ignore:
                return False
            status, error = 1, self._closing_id
        end = clock()
        slot.call = None
        self.recorder.add(end - due, end, status, error, sent - due)
        return True

    def _failed(self, exc: grpc.aio.AioRpcError) -> tuple[int, int]:
        code, details = exc.code(), exc.details() or ""
        key = (code, details)
        error = self._errors.get(key)
        if error is None:
            error = self._errors[key] = self.recorder.error_id(go_error(code, details))
        return status_number(code), error

    async def _take(self, slot: Slot) -> Ticket | None:
        if self._exhausted or self._stopping:
            return None
        waiter: asyncio.Future[Ticket | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        slot.waiter = waiter
        try:
            return await waiter
        finally:
            slot.waiter = None

    async def _one(self, n: int, due: int) -> None:
        """--async: one call as its own task, sent at once whatever is in flight."""
        connection = n % len(self.calls)
        try:
            payload, metadata = self.inputs.build(n, f"g{n % self.o.concurrency}c{connection}")
        except Exception as exc:
            self.failure = f"call {n}: {exc}"
            self._async_live -= 1
            self.stop("cancel")
            return
        sent = clock()
        call = self.calls[connection](
            payload, timeout=self._timeout_s, metadata=metadata, compression=self._compression
        )
        self._async_calls.add(call)
        status, error = 0, 0
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            status, error = self._failed(exc)
        except asyncio.CancelledError:
            if not self._closing:
                raise
            status, error = 1, self._closing_id
        finally:
            self._async_calls.discard(call)
            self._async_live -= 1
        end = clock()
        if not (status == 1 and error == self._closing_id and self._ignore):
            self.recorder.add(end - due, end, status, error, sent - due)
        self._check_done()

    # Pacing

    def _shard_dues(self) -> Iterator[Ticket]:
        index, count, limit = self.shard.index, self.shard.count, self._limit
        for h, offset in enumerate(self.rate.dues()):
            if h >= limit:
                return
            if h % count == index:
                yield h, self.start_ns + offset

    def _advance(self) -> None:
        self._pending = next(self._dues, None)

    def _on_alarm(self) -> None:
        if self._stopping:
            return
        now = clock()
        loop = asyncio.get_running_loop()
        while self._pending is not None and self._pending[1] <= now:
            ticket = self._pending
            self._scheduled += 1
            self._last_due_ns = ticket[1] - self.start_ns
            if self.o.async_:
                self._async_live += 1
                task = loop.create_task(self._one(*ticket))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                self._hand_out(ticket)
            self._advance()
        if self._pending is None:
            self._exhaust()
        elif self._alarm is not None:
            self._alarm.set(self._pending[1])

    def _hand_out(self, ticket: Ticket) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(ticket)
                return
        self._backlog.append(ticket)

    def _exhaust(self) -> None:
        self._exhausted = True
        self._wake_all()
        self._check_done()

    def _wake_all(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _check_done(self) -> None:
        if self._done is None or self._done.done() or self._live > 0 or self._async_live > 0:
            return
        if self.o.async_:
            finished = self._exhausted or self._stopping
        else:  # no worker left: the tickets ran out, the run stopped, or no worker will come
            finished = self._stopping or self._exhausted or not self._workers_pending
        if finished:
            self._done.set_result(None)
