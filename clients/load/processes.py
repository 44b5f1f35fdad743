"""Processes: --procs N spreads one run over N worker processes and merges their calls.

One Python process tops out at what one core can drive, so N processes ('spawn' start: no gRPC
state is forked) each run a Shard: every N-th request number, 1/N of the workers, connections
and rate. All of them connect first, then start at one CLOCK_MONOTONIC instant the parent
picks, so due times and end times line up; their raw latency arrays are merged into one list
in completion order, and the report is computed over it exactly as for one process.
The parent sends "stop" down each pipe on Ctrl-C (workers ignore SIGINT themselves), so the
partial report still covers every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection, wait
from typing import Any

from forestgate.clients.load import LoadError
from forestgate.clients.load.options import LoadOptions
from forestgate.clients.load.results import Calls, RunResult
from forestgate.clients.load.runner import Runner, Shard

START_MARGIN_NS = 50_000_000  # time for every process to get the start message


def run_processes(options: LoadOptions, descriptor_set: bytes) -> RunResult:
    context = multiprocessing.get_context("spawn")
    count = options.procs
    pipes: list[Connection] = []
    workers = []
    for index in range(count):
        mine, theirs = context.Pipe()
        process = context.Process(
            target=worker_main, args=(options, descriptor_set, index, count, theirs), daemon=True
        )
        process.start()
        theirs.close()
        pipes.append(mine)
        workers.append(process)
    stopped = {"reason": ""}

    def on_sigint(_signum: int, _frame: Any) -> None:
        if stopped["reason"]:
            raise KeyboardInterrupt
        stopped["reason"] = "cancel"
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        ready_by = time.monotonic() + options.connect_timeout_ns / 1e9 + 60
        for pipe in pipes:
            message = _receive(pipe, ready_by)
            if message[0] == "error":
                raise LoadError(message[1])
        wall_ns, mono_ns = time.time_ns(), time.monotonic_ns()
        start_ns = mono_ns + START_MARGIN_NS
        for pipe in pipes:
            pipe.send(("start", start_ns))
        limit_s = (options.time_limit_ns or 0) / 1e9
        results_by = time.monotonic() + (limit_s or 3600) + options.timeout_ns / 1e9 + 60
        results: list[RunResult] = []
        for pipe in pipes:
            message = _receive(pipe, results_by)
            if message[0] == "error":
                raise LoadError(message[1])
            results.append(message[1])
    finally:
        signal.signal(signal.SIGINT, previous)
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
            pipe.close()
        for process in workers:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
    merged = merge(results, start_wall_ns=wall_ns + START_MARGIN_NS)
    if stopped["reason"]:
        merged.end_reason = "cancel"
    return merged


def _receive(pipe: Connection, deadline: float) -> Any:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise LoadError("a load process did not answer in time")
        if wait([pipe], timeout=min(left, 0.5)):
            try:
                return pipe.recv()
            except EOFError:
                raise LoadError("a load process exited unexpectedly") from None


def merge(results: list[RunResult], *, start_wall_ns: int) -> RunResult:
    reasons = {r.end_reason for r in results}
    reason = "cancel" if "cancel" in reasons else "timeout" if "timeout" in reasons else "normal"
    return RunResult(
        calls=Calls.merge([r.calls for r in results]),
        start_ns=results[0].start_ns,
        start_wall_ns=start_wall_ns,
        finish_ns=max(r.finish_ns for r in results),
        end_reason=reason,
        open_loop=results[0].open_loop,
        scheduled=sum(r.scheduled for r in results),
        last_due_ns=max(r.last_due_ns for r in results),
        procs=len(results),
        failure=next((r.failure for r in results if r.failure), ""),
        cpu_ns=sum(r.cpu_ns for r in results),
    )


def worker_main(
    options: LoadOptions, descriptor_set: bytes, index: int, count: int, pipe: Connection
) -> None:
    """A worker process: connect, report ready, run its shard from the start time, send back."""
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides, over the pipe
    try:
        uvloop.run(_worker(options, descriptor_set, Shard(index, count), pipe))
    except LoadError as exc:
        with contextlib.suppress(OSError):
            pipe.send(("error", str(exc)))
    finally:
        pipe.close()


async def _worker(
    options: LoadOptions, descriptor_set: bytes, shard: Shard, pipe: Connection
) -> None:
    from forestgate.clients.load.data import build_inputs
    from forestgate.clients.load.schema import from_descriptor_set

    schema = from_descriptor_set(options.call, descriptor_set, source="the parent's schema")
    runner = Runner(options, build_inputs(options, schema), shard)
    await runner.open()
    loop = asyncio.get_running_loop()
    messages: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def readable() -> None:
        try:
            messages.put_nowait(pipe.recv())
        except (EOFError, OSError):
            loop.remove_reader(pipe.fileno())
            messages.put_nowait(("stop",))

    loop.add_reader(pipe.fileno(), readable)
    pipe.send(("ready",))
    try:
        first = await messages.get()
        if first[0] != "start":
            return
        run = loop.create_task(runner.run(start_ns=first[1]))
        stop = loop.create_task(messages.get())
        await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            runner.stop("cancel")
        stop.cancel()
        result = await run
    finally:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(pipe.fileno())
        await runner.close()
    # The event loop made the pipe non-blocking to watch it; a large result needs blocking.
    os.set_blocking(pipe.fileno(), True)
    pipe.send(("result", result))
