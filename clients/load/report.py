"""Report: ghz's statistics of a run (runner/reporter.go), reproduced to the nanosecond.

- count, the latency sum (for `average`), statusCodeDistribution and errorDistribution cover
  every call; fastest, slowest, histogram and latencyDistribution only the OK ones (all of
  them with --count-errors), and only the first MAX_DETAILS calls, as ghz keeps.
- Latencies pass through Go's float seconds (Duration.Seconds(), then Duration(s * 1e9)), so
  the integers match ghz's rounding; the sum is sequential, as Go adds them.
- Percentile p is sorted[di] with ip = p/100 * n, di = int(ip), minus 1 when ip is whole.
- The histogram has 11 marks (fastest + i * (slowest - fastest) / 10, the last = slowest),
  each latency in the first mark >= it; counts are not cumulative.
Our additions go under "forestgate" so the ghz shape stays intact.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from forestgate.clients.load.options import LoadOptions
from forestgate.clients.load.results import GO_STATUS, RunResult
from forestgate.clients.load.schedule import SECOND_NS, RateSchedule

PERCENTILES = (10, 25, 50, 75, 90, 95, 99)


class GoMap(dict[str, Any]):
    """A JSON object Go writes with sorted keys (a map, not a struct)."""


@dataclass
class Details:
    """The kept calls, encoded lazily (a million of them would not fit as dicts)."""

    latency_ns: npt.NDArray[np.int64]
    end_wall_ns: npt.NDArray[np.int64]
    status: npt.NDArray[np.int8]
    error: npt.NDArray[np.int32]
    error_texts: list[str]

    def __len__(self) -> int:
        return len(self.latency_ns)


@dataclass
class Report:
    date_ns: int
    name: str
    end_reason: str
    options: dict[str, Any]
    count: int
    total_ns: int
    average_ns: int
    fastest_ns: int
    slowest_ns: int
    rps: float
    error_distribution: dict[str, int]
    status_distribution: dict[str, int]
    latency_distribution: list[tuple[int, int]] | None
    histogram: list[tuple[float, int, float]] | None
    details: Details | None
    tags: dict[str, str] | None
    forestgate: dict[str, Any]


def go_seconds(ns: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """time.Duration.Seconds(): whole seconds plus the nanoseconds / 1e9."""
    whole, part = np.divmod(ns, 1_000_000_000)
    return whole.astype(np.float64) + part.astype(np.float64) / 1e9


def go_duration(seconds: float) -> int:
    """time.Duration(seconds * float64(time.Second)): truncated toward zero."""
    return int(seconds * 1e9)


def percentile(sorted_s: npt.NDArray[np.float64], p: float) -> float:
    ip = (p / 100.0) * float(len(sorted_s))
    di = int(ip)
    if ip == di:
        di -= 1
    return float(sorted_s[max(di, 0)])


def latencies(sorted_s: npt.NDArray[np.float64]) -> list[tuple[int, int]]:
    out = []
    for p in PERCENTILES:
        value = percentile(sorted_s, p)
        out.append((p, go_duration(value)) if value > 0 else (0, 0))
    return out


def histogram(sorted_s: npt.NDArray[np.float64]) -> list[tuple[float, int, float]]:
    fastest, slowest = float(sorted_s[0]), float(sorted_s[-1])
    size = (slowest - fastest) / 10.0
    marks = [fastest + size * i for i in range(10)] + [slowest]
    counts = np.bincount(np.searchsorted(np.array(marks), sorted_s, side="left"), minlength=11)
    n = float(len(sorted_s))
    return [(marks[i], int(counts[i]), int(counts[i]) / n) for i in range(11)]


def build_report(result: RunResult, options: LoadOptions, *, now_ns: int | None = None) -> Report:
    calls = result.calls
    skip = min(options.skip_first, len(calls.latency_ns))
    latency = calls.latency_ns[skip:]
    status = calls.status[skip:]
    error = calls.error[skip:]
    overflow = calls.overflow
    count = len(latency) + overflow.count
    total_ns = result.finish_ns - result.start_ns
    total_s = float(go_seconds(np.array([total_ns]))[0])
    statuses: Counter[str] = Counter()
    for code, n in zip(*np.unique(status, return_counts=True), strict=True):
        statuses[GO_STATUS[int(code)]] += int(n)
    statuses.update(overflow.statuses)
    errors: Counter[str] = Counter()
    for index, n in zip(*np.unique(error[error > 0], return_counts=True), strict=True):
        errors[calls.error_texts[int(index)]] += int(n)
    errors.update(overflow.errors)
    seconds = go_seconds(latency)
    average_ns = fastest_ns = slowest_ns = 0
    rps = 0.0
    distribution = buckets = None
    details = None
    ok_s = np.sort(seconds if options.count_errors else seconds[error == 0])
    if len(latency):
        latency_sum = float(np.cumsum(seconds)[-1]) + overflow.latency_s
        average_ns = go_duration(latency_sum / count)
        rps = count / total_s if total_s > 0 else 0.0
        if len(ok_s):
            fastest_ns, slowest_ns = go_duration(ok_s[0]), go_duration(ok_s[-1])
            buckets = histogram(ok_s)
            distribution = latencies(ok_s)
        end_wall = result.start_wall_ns + (calls.end_ns[skip:] - result.start_ns)
        details = Details(latency, end_wall, status, error, calls.error_texts)
    return Report(
        date_ns=now_ns if now_ns is not None else time.time_ns(),
        name=options.name,
        end_reason=result.end_reason,
        options=ghz_options(options),
        count=count,
        total_ns=total_ns,
        average_ns=average_ns,
        fastest_ns=fastest_ns,
        slowest_ns=slowest_ns,
        rps=rps,
        error_distribution=GoMap(errors),
        status_distribution=GoMap(statuses),
        latency_distribution=distribution,
        histogram=buckets,
        details=details,
        tags=GoMap(options.tags) if options.tags else None,
        forestgate=additions(
            result, options, ok_s=ok_s, lag_ns=calls.lag_ns[skip:], count=count, total_s=total_s
        ),
    )


def additions(
    result: RunResult,
    options: LoadOptions,
    *,
    ok_s: npt.NDArray[np.float64],
    lag_ns: npt.NDArray[np.int64],
    count: int,
    total_s: float,
) -> dict[str, Any]:
    """What ghz does not report: p99.9; the CPU the tool itself used over the run (ns, all its
    threads and processes: near one core per process means the tool may be the bottleneck);
    and for open loop the intended against the actual rate and how late the tool sent."""
    out: dict[str, Any] = {
        "p99.9": go_duration(percentile(ok_s, 99.9)) if len(ok_s) else 0,
        "openLoop": result.open_loop,
        "latencyFrom": "scheduled send time" if result.open_loop else "send time",
        "procs": result.procs,
        "cpu": result.cpu_ns,
    }
    if result.open_loop:
        rate = RateSchedule.from_options(options)
        span_s = result.last_due_ns / 1e9
        if rate.kind == "const":
            intended = float(rate.rps)
        else:
            intended = result.scheduled / span_s if span_s > 0 else 0.0
        out["intendedRps"] = intended
        out["actualRps"] = count / total_s if total_s > 0 else 0.0
        out["scheduled"] = result.scheduled
        if len(lag_ns):
            ordered = np.sort(lag_ns)
            out["sendLag"] = {
                "p50": int(ordered[int(0.5 * (len(ordered) - 1))]),
                "p99": int(ordered[int(0.99 * (len(ordered) - 1))]),
                "max": int(ordered[-1]),
            }
    return out


def ghz_options(o: LoadOptions) -> dict[str, Any]:
    """runner/reporter.go's Options, field for field; Go's omitempty drops the zero values."""
    import_paths = list(o.import_paths)
    if o.proto:
        folder = o.proto.rsplit("/", 1)[0] if "/" in o.proto else "."
        import_paths = ([folder] if folder != "." else []) + ["."] + import_paths
    # ghz forces a 1 s step for line schedules and reports it.
    line_load, line_workers = o.load_schedule == "line", o.concurrency_schedule == "line"
    load_step_ns = SECOND_NS if line_load else o.load_step_duration_ns
    concurrency_step_ns = SECOND_NS if line_workers else o.concurrency_step_duration_ns
    fields: list[tuple[str, Any, bool]] = [  # (key, value, omitempty)
        ("call", o.call, True), ("host", o.host, True), ("proto", o.proto, True),
        ("protoset", o.protoset, True), ("import-paths", import_paths, True),
        ("enable-compression", o.enable_compression, True), ("cacert", o.cacert, True),
        ("cert", o.cert, True), ("key", o.key, True), ("cname", o.cname, True),
        ("skipTLS", o.skip_tls, True), ("insecure", o.insecure, False),
        ("authority", o.authority, True), ("rps", o.rps, True),
        ("load-schedule", o.load_schedule, False), ("load-start", o.load_start, False),
        ("load-end", o.load_end, False), ("load-step", o.load_step, False),
        ("load-step-duration", load_step_ns, False),
        ("load-max-duration", o.load_max_duration_ns, False),
        ("concurrency", o.concurrency, True),
        ("concurrency-schedule", o.concurrency_schedule, False),
        ("concurrency-start", o.concurrency_start, False),
        ("concurrency-end", o.concurrency_end, False),
        ("concurrency-step", o.concurrency_step, False),
        ("concurrency-step-duration", concurrency_step_ns, False),
        ("concurrency-max-duration", o.concurrency_max_duration_ns, False),
        ("total", o.count_limit, True), ("async", o.async_, True),
        ("connections", o.connections, True), ("duration", o.time_limit_ns, True),
        ("timeout", o.timeout_ns, True), ("dial-timeout", o.connect_timeout_ns, True),
        ("keepalive", o.keepalive_ns, True), ("data", _go_value(o.data), True),
        ("binary", o.binary_data is not None, False),
        ("metadata", GoMap(o.metadata) if o.metadata else None, True),
        ("CPUs", o.cpus, False), ("name", o.name, True), ("skipFirst", o.skip_first, True),
        ("count-errors", o.count_errors, True),
    ]  # fmt: skip
    return {k: v for k, v, omit in fields if not (omit and _empty(v))}


def _empty(value: Any) -> bool:
    return value is None or value is False or value in (0, "", [], {})


def _go_value(value: Any) -> Any:
    """Parsed JSON as Go re-marshals interface{}: objects become maps (sorted keys)."""
    if isinstance(value, dict):
        return GoMap({k: _go_value(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_go_value(v) for v in value]
    return value
