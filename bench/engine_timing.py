"""Timing: per-call latency samples of interleaved engines, with the noise context of each cell.

Every call gets a different batch (the test rows are cycled), the garbage collector is off while
timing, and each cell records its load average and CPU share (thread CPU time / wall time), so
cells disturbed by other work on this shared 2-core machine can be spotted.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_DISTINCT_BATCHES = 2_000


@dataclass(frozen=True)
class Budget:
    """How long each engine runs per batch size and round."""

    rounds: int
    slice_s: float  # timed seconds per engine, batch size and round
    warmup_s: float
    min_calls: int = 3
    max_calls: int = 50_000


@dataclass
class Cell:
    """All per-call samples of one engine at one batch size, over every round."""

    engine: str
    batch: int
    times_ns: list[int] = field(default_factory=list)
    cpu_ns: int = 0
    wall_ns: int = 0
    loadavg: list[float] = field(default_factory=list)
    round_medians_us: list[float] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.times_ns)

    @property
    def median_us(self) -> float:
        return float(np.median(self.times_ns)) / 1e3

    @property
    def p99_us(self) -> float:
        return float(np.percentile(self.times_ns, 99)) / 1e3

    @property
    def per_row_us(self) -> float:
        return self.median_us / self.batch

    @property
    def cpu_share(self) -> float:
        return self.cpu_ns / self.wall_ns if self.wall_ns else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "batch": self.batch,
            "calls": self.calls,
            "median_us": self.median_us,
            "p99_us": self.p99_us,
            "per_row_us": self.per_row_us,
            "cpu_share": round(self.cpu_share, 4),
            "loadavg_max": max(self.loadavg),
            "round_medians_us": [round(v, 3) for v in self.round_medians_us],
        }


def batches_of(pool: npt.NDArray[Any], batch: int) -> list[npt.NDArray[Any]]:
    """Consecutive, non-overlapping C-contiguous views of `batch` rows, made before timing."""
    n = min(pool.shape[0] // batch, MAX_DISTINCT_BATCHES)
    return [pool[i * batch : (i + 1) * batch] for i in range(n)]


def _run(
    call: Callable[[Any], object], batches: Sequence[Any], budget: Budget, start: int
) -> tuple[list[int], int, int, int]:
    nb = len(batches)
    clock = time.perf_counter_ns
    i = start
    deadline = clock() + int(budget.warmup_s * 1e9)
    while i - start < 2 or clock() < deadline:
        call(batches[i % nb])
        i += 1
    times: list[int] = []
    append = times.append
    cpu0 = time.thread_time_ns()
    wall0 = clock()
    deadline = wall0 + int(budget.slice_s * 1e9)
    n = 0
    while True:
        x = batches[i % nb]
        t0 = clock()
        call(x)
        t1 = clock()
        append(t1 - t0)
        i += 1
        n += 1
        if n >= budget.max_calls or (n >= budget.min_calls and t1 >= deadline):
            break
    return times, time.thread_time_ns() - cpu0, clock() - wall0, i


def measure(
    engines: Sequence[tuple[str, Callable[[Any], object], npt.NDArray[Any]]],
    batch_sizes: Sequence[int],
    budget: Budget,
    label: str = "",
) -> dict[tuple[str, int], Cell]:
    """Time every (engine, batch size), interleaved: each round visits every batch size and, in
    a rotating order, every engine, so slow drifts in machine load hit all engines alike.

    `engines` holds (name, call, input pool); `call` gets one C-contiguous batch.
    """
    cells = {(name, b): Cell(name, b) for name, _, _ in engines for b in batch_sizes}
    views = {(name, b): batches_of(pool, b) for name, _, pool in engines for b in batch_sizes}
    cursor = dict.fromkeys(cells, 0)
    gc.collect()
    gc.disable()
    try:
        for r in range(budget.rounds):
            for bi, b in enumerate(batch_sizes):
                shift = (r + bi) % len(engines)
                for name, call, _ in [*engines[shift:], *engines[:shift]]:
                    cell = cells[(name, b)]
                    cell.loadavg.append(os.getloadavg()[0])
                    times, cpu, wall, cursor[(name, b)] = _run(
                        call, views[(name, b)], budget, cursor[(name, b)]
                    )
                    cell.times_ns += times
                    cell.cpu_ns += cpu
                    cell.wall_ns += wall
                    cell.round_medians_us.append(float(np.median(times)) / 1e3)
            print(f"  {label} round {r + 1}/{budget.rounds} done", file=sys.stderr, flush=True)
    finally:
        gc.enable()
    return cells


def linear_fit(
    cells: dict[tuple[str, int], Cell], engine: str, up_to: int = 64
) -> tuple[float, float]:
    """Least-squares fit of median per-call time = a + c * batch over batch <= up_to.

    Returns (a, c) in microseconds: a estimates the fixed cost of a call, c the cost per row.
    """
    pts = sorted(
        (b, cell.median_us) for (e, b), cell in cells.items() if e == engine and b <= up_to
    )
    if len(pts) < 2:
        return float("nan"), float("nan")
    b, t = np.array(pts).T
    c, a = np.polyfit(b, t, 1)
    return float(a), float(c)


def block_means(
    items: Sequence[tuple[str, Callable[[Any], object]]],
    inputs: Sequence[Any],
    *,
    rounds: int,
    block: int,
) -> dict[str, dict[str, float]]:
    """Sub-microsecond costs: mean time per call over blocks of back-to-back calls (no timer
    call inside the block), interleaved across items; median and spread of the block means."""
    results: dict[str, list[float]] = {name: [] for name, _ in items}
    clock = time.perf_counter_ns
    n = len(inputs)
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            for name, call in items[r % len(items) :] + items[: r % len(items)]:
                for i in range(min(block, 200)):  # warm-up
                    call(inputs[i % n])
                t0 = clock()
                for i in range(block):
                    call(inputs[i % n])
                results[name].append((clock() - t0) / block / 1e3)
    finally:
        gc.enable()
    return {
        name: {
            "median_us": float(np.median(v)),
            "p10_us": float(np.percentile(v, 10)),
            "p90_us": float(np.percentile(v, 90)),
            "blocks": len(v),
        }
        for name, v in results.items()
    }
