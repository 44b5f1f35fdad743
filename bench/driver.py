"""Driver: a closed-loop or open-loop gRPC load generator for ModelInfer, run as its own process.

Requests are serialized once at start (a pool of distinct ones, cycled) and sent through
`unary_unary` with identity serializers, so the client pays no protobuf work per call; calls
spread over several channels, each its own HTTP/2 connection.

- Closed loop (`--concurrency N`): N workers, each sending its next request when the previous
  answer arrives. Latency runs from send to answer; throughput is what the server sustains.
- Open loop (`--rate R`): request i is due at start + i/R whatever the answers do. Latency runs
  from the request's *scheduled* time, so a server (or driver) that falls behind shows it
  (no coordinated omission); the send lag (actual - scheduled) is reported beside it.

A run warms up, then measures for `--seconds` or until `--max-requests` calls, and stops by
itself. It prints one JSON object: rps, latency percentiles of the OK calls (ghz's rule: the
ceil(p*n)-th smallest), counts by status code, and the CPU the driver (and, given
`--server-pid`, the server) used in the measured window. `--latencies-out` saves every OK
latency (int64 ns) for pooling across runs.
Run: .venv/bin/python bench/driver.py --target HOST:PORT --model NAME --rows 1 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import uvloop

from forestgate.protos.inference import grpc_service_pb2 as pb

METHOD = "/inference.GRPCInferenceService/ModelInfer"
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
TICKS = os.sysconf("SC_CLK_TCK")
CLOCK_MONOTONIC, TFD_TIMER_ABSTIME, TFD_NONBLOCK, TFD_CLOEXEC = 1, 1, 0o4000, 0o2000000
clock = time.monotonic_ns


def build_requests(
    x: npt.NDArray[np.float32], rows: int, model: str, limit: int = 4096
) -> list[bytes]:
    """Serialized ModelInferRequests of `rows` consecutive rows each, as ForestGate's clients
    send them: one FP32 input with raw_input_contents."""
    out = []
    for start in range(0, min(len(x) - rows + 1, limit * rows), rows):
        block = np.ascontiguousarray(x[start : start + rows], dtype=np.float32)
        request = pb.ModelInferRequest(model_name=model)
        request.inputs.add(name="input__0", datatype="FP32", shape=list(block.shape))
        request.raw_input_contents.append(block.tobytes())
        out.append(request.SerializeToString())
    return out


def percentiles_us(latencies_ns: npt.NDArray[np.int64]) -> dict[str, float | None]:
    """ghz's percentiles (the ceil(p/100 * n)-th smallest), in microseconds; None if empty."""
    if latencies_ns.size == 0:
        return {name: None for name in [*PERCENTILES, "mean", "max"]}
    values = np.percentile(latencies_ns, list(PERCENTILES.values()), method="inverted_cdf")
    out: dict[str, float | None] = {
        name: float(v) / 1e3 for name, v in zip(PERCENTILES, values, strict=True)
    }
    out["mean"] = float(latencies_ns.mean()) / 1e3
    out["max"] = float(latencies_ns.max()) / 1e3
    return out


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process, all threads, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


class Recorder:
    """Every measured call's latency and status; preallocated so recording costs one store."""

    def __init__(self, capacity: int) -> None:
        self.latency_ns = np.empty(capacity, dtype=np.int64)
        self.lag_ns = np.empty(capacity, dtype=np.int64)
        self.n = 0
        self.capacity = capacity
        self.errors: dict[str, int] = {}

    @property
    def full(self) -> bool:
        return self.n >= self.capacity

    def ok(self, latency_ns: int, lag_ns: int = 0) -> None:
        if self.n < self.capacity:
            self.latency_ns[self.n] = latency_ns
            self.lag_ns[self.n] = lag_ns
            self.n += 1

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


class Window:
    """The measured interval, and the CPU the driver and server used inside it."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.start_ns = self.end_ns = self.last_answer_ns = 0
        self._cpu: list[float] = []
        self._server: list[float | None] = []

    def mark(self) -> int:
        now = clock()
        times = os.times()
        self._cpu.append(times.user + times.system)
        self._server.append(process_cpu_s(self.server_pid) if self.server_pid else None)
        return now

    def open(self) -> None:
        self.start_ns = self.mark()

    def close(self) -> None:
        self.end_ns = self.mark()

    def cpu(self) -> dict[str, float | None]:
        wall = max(self.end_ns - self.start_ns, 1) / 1e9
        start, end = self._server[0], self._server[-1]
        return {
            "driver_cpu_util": (self._cpu[-1] - self._cpu[0]) / wall,
            "server_cpu_util": None if start is None or end is None else (end - start) / wall,
        }


async def closed_loop(
    calls: list[Any], requests: list[bytes], args: argparse.Namespace, rec: Recorder, win: Window
) -> int:
    """N workers, one call in flight each; returns the calls answered in the measured window.

    A call counts when its answer arrives inside the window, whenever it was sent, so the
    window's edges neither lose nor add calls in the steady state.
    """
    state = {"recording": False, "stop": False}
    timeout = args.timeout_s
    n_req = len(requests)

    async def worker(index: int) -> None:
        call = calls[index % len(calls)]
        i = index * 7919  # workers start at different requests of the pool
        while not state["stop"]:
            payload = requests[i % n_req]
            i += 1
            started = clock()
            try:
                await call(payload, timeout=timeout)
                if state["recording"] and not state["stop"]:
                    rec.ok(clock() - started)
                    if rec.full:
                        state["stop"] = True
            except grpc.aio.AioRpcError as exc:
                if state["recording"] and not state["stop"]:
                    rec.error(exc.code().name)

    workers = [asyncio.ensure_future(worker(i)) for i in range(args.concurrency)]
    await asyncio.sleep(args.warmup_s)
    win.open()
    state["recording"] = True
    deadline = win.start_ns + int(args.seconds * 1e9)
    while not state["stop"] and clock() < deadline:
        await asyncio.sleep(min(0.05, max(deadline - clock(), 0) / 1e9))
    state["stop"] = True
    win.close()
    await asyncio.wait(workers, timeout=args.timeout_s + 1)
    return rec.n + sum(rec.errors.values())


class Ticker:
    """A periodic Linux timerfd on CLOCK_MONOTONIC (time.monotonic_ns's clock).

    Event-loop timers tick in whole milliseconds, too coarse to schedule calls 200 us apart,
    and spinning instead would make the driver a CPU hog that the kernel preempts for whole
    time slices on a shared machine. The kernel's high-resolution timer wakes the loop
    through `add_reader` at each due time; a read returns how many periods have passed.
    """

    def __init__(self, start_ns: int, period_ns: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        spec = (ctypes.c_long * 4)(
            period_ns // 1_000_000_000, period_ns % 1_000_000_000,  # it_interval
            start_ns // 1_000_000_000, start_ns % 1_000_000_000,  # it_value (absolute)
        )  # fmt: skip
        if libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, spec, None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime")

    def expirations(self) -> int:
        try:
            return int.from_bytes(os.read(self.fd, 8), "little")
        except BlockingIOError:
            return 0

    def close(self) -> None:
        os.close(self.fd)


async def open_loop(
    calls: list[Any], requests: list[bytes], args: argparse.Namespace, rec: Recorder, win: Window
) -> int:
    """Send call i at start + i * period; returns the calls scheduled in the measured window.

    Open-loop rps counts the calls scheduled in the window that succeeded, whenever they
    finished; the window is the scheduled interval, and calls still in flight at its end are
    then waited for (up to their deadline).
    """
    loop = asyncio.get_running_loop()
    period_ns = round(1e9 / args.rate)
    timeout = args.timeout_s
    n_req, n_calls = len(requests), len(calls)
    in_flight: set[asyncio.Task[None]] = set()
    warmup_n = int(args.warmup_s * args.rate)
    total_n = warmup_n + int(args.seconds * args.rate)
    start = clock() + 2_000_000
    measured_from = start + warmup_n * period_ns
    state = {"next": 0, "sent": 0}
    done = loop.create_future()

    async def one(i: int, due: int) -> None:
        sent = clock()
        try:
            await calls[i % n_calls](requests[i % n_req], timeout=timeout)
            if due >= measured_from:
                ended = win.last_answer_ns = clock()
                rec.ok(ended - due, sent - due)
        except grpc.aio.AioRpcError as exc:
            if due >= measured_from:
                win.last_answer_ns = clock()
                rec.error(exc.code().name)

    def on_tick() -> None:
        due_count = ticker.expirations()
        for _ in range(due_count):
            i = state["next"]
            if i >= total_n or rec.full:
                if not done.done():
                    done.set_result(None)
                return
            if i == warmup_n:
                win.open()
            state["next"] = i + 1
            measuring = i >= warmup_n
            if len(in_flight) >= args.max_in_flight:
                if measuring:
                    rec.error("DRIVER_IN_FLIGHT_LIMIT")
                continue
            task = loop.create_task(one(i, start + i * period_ns))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if measuring:
                state["sent"] += 1

    ticker = Ticker(start, period_ns)
    loop.add_reader(ticker.fd, on_tick)
    try:
        await done
    finally:
        loop.remove_reader(ticker.fd)
        ticker.close()
    if not win.start_ns:
        win.open()
    win.close()
    if in_flight:
        await asyncio.wait(in_flight, timeout=args.timeout_s + 1)
    return state["sent"]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.data:
        x = np.load(args.data).astype(np.float32, copy=False)
    else:
        x = np.random.default_rng(1).normal(size=(4096 * args.rows, args.features))
    requests = build_requests(np.asarray(x, dtype=np.float32), args.rows, args.model)
    options = [
        # Separate connections: channels with equal arguments would share one subchannel.
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ]
    connections = max(1, min(args.connections, args.concurrency or args.connections))
    channels = [grpc.aio.insecure_channel(args.target, options=options) for _ in range(connections)]
    await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 10)
    calls = [
        c.unary_unary(
            METHOD, request_serializer=None, response_deserializer=None, _registered_method=True
        )
        for c in channels
    ]
    capacity = args.max_requests
    rec = Recorder(capacity)
    win = Window(args.server_pid)
    if args.rate:
        sent = await open_loop(calls, requests, args, rec, win)
    else:
        sent = await closed_loop(calls, requests, args, rec, win)
    for channel in channels:
        await channel.close()
    latencies = rec.latency_ns[: rec.n]
    window_s = (win.end_ns - win.start_ns) / 1e9
    errors = sum(rec.errors.values())
    result: dict[str, Any] = {
        "mode": "open" if args.rate else "closed",
        "target": args.target,
        "rows": args.rows,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "connections": connections,
        "window_s": window_s,
        "sent": sent,
        "ok": rec.n,
        "errors": rec.errors,
        "error_count": errors,
        "rps": rec.n / window_s if window_s > 0 else 0.0,
        "latency_us": percentiles_us(latencies),
        **win.cpu(),
    }
    if args.rate:
        # Throughput as answers per second until the last one: below the offered rate when
        # the server falls behind, even though every call is eventually answered.
        answering_s = max(win.last_answer_ns, win.end_ns) - win.start_ns
        result["answering_s"] = answering_s / 1e9
        result["answered_rps"] = rec.n / (answering_s / 1e9) if answering_s > 0 else 0.0
        lag = percentiles_us(rec.lag_ns[: rec.n])
        result["send_lag_us"] = {k: lag[k] for k in ("p50", "p99", "max")}
    if args.latencies_out:
        np.save(args.latencies_out, latencies)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", required=True, help="HOST:PORT")
    parser.add_argument("--model", required=True, help="model_name in the requests")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--data", type=Path, help=".npy float32 [n, F] rows to send (cycled)")
    parser.add_argument("--features", type=int, default=64, help="F when --data is not given")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--concurrency", type=int, default=0, help="closed loop: calls in flight")
    mode.add_argument("--rate", type=float, default=0.0, help="open loop: calls per second")
    parser.add_argument("--connections", type=int, default=4, help="channels (HTTP/2 connections)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="unmeasured load first")
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="stop after this many")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="deadline of each call")
    parser.add_argument("--max-in-flight", type=int, default=20_000, help="open loop: cap")
    parser.add_argument("--server-pid", type=int, help="also report this process's CPU use")
    parser.add_argument("--latencies-out", type=Path, help="save OK latencies (.npy, int64 ns)")
    args = parser.parse_args()
    if args.concurrency < 0 or args.rate < 0 or args.rows < 1:
        parser.error("--concurrency, --rate and --rows must be positive")
    print(json.dumps(uvloop.run(run(args))))


if __name__ == "__main__":
    main()
