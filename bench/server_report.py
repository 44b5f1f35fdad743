"""Server report: bench/server.py's measurements as server.md, server.json and server.png.

Every number in the markdown comes from the results passed in: latencies are pooled over the
rounds of each cell, targets are judged on those pooled numbers, and the prose that explains a
miss is chosen by comparing them, so a rerun that measures differently says so.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import report
from server_profile import summarize_profile

LABELS = {
    "forestgate": "ForestGate (defaults, 1 core)",
    "forestgate_pinned": "ForestGate, engine on core 1",
    "forestgate_inline": "ForestGate, engine on the loop",
    "forestgate_off": "ForestGate, batching off",
    "constant": "constant server (ceiling)",
    "naive": "naive XGBoost server",
    "direct": "compiled model, bare server",
    "forestgate_delay": "ForestGate, engine on core 1, queue delay",
    "forestgate_gather": "ForestGate, engine on core 1, gather",
    "workers_1": "ForestGate, 1 worker, both cores",
    "workers_2": "ForestGate, 2 workers, both cores",
    "approval": "ForestGate, demo approval model",
    "forestgate_p32": "ForestGate, --max-pending-calls 32",
}
COLORS = {
    "forestgate": "tab:blue",
    "forestgate_pinned": "tab:purple",
    "forestgate_inline": "tab:olive",
    "forestgate_off": "tab:cyan",
    "constant": "tab:gray",
    "naive": "tab:red",
    "direct": "tab:green",
}
TARGET_CONCURRENCY = 32
CEILING_RATIO = 0.8
NAIVE_RATIO = {1: 4.0, 16: 3.5}
REQUESTS_PER_BATCH = 4.0
P99_AT_ONE_RATIO = 1.5
BATCH_P50_BUDGET_US = 20.0
JUDGED = ("forestgate", "forestgate_pinned")
SUB_MS_US = 1000.0
MODERATE_SHARE = 0.5  # "moderate load": at most half of what ForestGate sustains closed-loop
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}


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


def cell_key(series: str, mode: str, rows: int, load: float) -> str:
    return f"{series}|{mode}|{rows}|{round(load)}"


def pool(cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each cell's rounds as one: latencies concatenated, rps = OK calls / summed windows."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in cells:
        load = c["concurrency"] if c["mode"] == "closed" else c["rate"]
        groups[cell_key(c["series"], c["mode"], c["rows"], load)].append(c)
    out = {}
    for key, group in groups.items():
        latencies = np.concatenate([np.load(c["latencies_file"]) for c in group])
        window = sum(c["window_s"] for c in group)
        errors: Counter[str] = Counter()
        for c in group:
            errors.update(c["errors"])
        first = group[0]
        pooled: dict[str, Any] = {
            "series": first["series"],
            "mode": first["mode"],
            "rows": first["rows"],
            "load": first["concurrency"] if first["mode"] == "closed" else first["rate"],
            "rounds": len(group),
            "ok": int(latencies.size),
            "sent": sum(c["sent"] for c in group),
            "rps": latencies.size / window if window else 0.0,
            "rps_rounds": [round(c["rps"]) for c in group],
            "latency_us": percentiles_us(latencies),
            "errors": dict(errors),
            "error_count": sum(errors.values()),
            "server_cpu_util": _mean(c["server_cpu_util"] for c in group),
            "driver_cpu_util": _mean(c["driver_cpu_util"] for c in group),
            "loadavg": _mean(c["loadavg"] for c in group),
        }
        if "answering_s" in first:
            answering = sum(c["answering_s"] for c in group)
            pooled["answered_rps"] = latencies.size / answering if answering else 0.0
        if "send_lag_us" in first:
            pooled["send_lag_us"] = {
                "p50": _mean(c["send_lag_us"]["p50"] for c in group),
                "p99": max((c["send_lag_us"]["p99"] or 0) for c in group),
            }
        if "batching" in first:
            batches = sum(c["batching"]["batches"] for c in group)
            pooled["batching"] = {
                name: sum(c["batching"][name] * c["batching"]["batches"] for c in group) / batches
                if batches
                else 0.0
                for name in (
                    "rows_per_batch",
                    "requests_per_batch",
                    "compute_us_per_batch",
                    "queue_wait_us_mean",
                )
            }
            histogram: Counter[str] = Counter()
            for c in group:
                histogram.update(c["batching"].get("batch_rows_histogram", {}))
            pooled["batching"]["batch_rows_histogram"] = dict(histogram)
        out[key] = pooled
    return out


def _mean(values: Any) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def peak_rps(cells: list[dict[str, Any]], series: str) -> dict[int, float]:
    """A series' best pooled closed-loop rps per request size (for "constant": the ceiling)."""
    best: dict[int, float] = {}
    chosen = [c for c in cells if c["series"] == series and c["mode"] == "closed"]
    for p in pool(chosen).values():
        best[p["rows"]] = max(best.get(p["rows"], 0.0), p["rps"])
    return best


def _target(rows: int, target: str, measured: str, ratio: str, met: bool) -> dict[str, Any]:
    return {"rows": rows, "target": target, "measured": measured, "ratio": ratio, "met": met}


def targets(pooled: dict[str, dict[str, Any]], run: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue #12's targets for each judged configuration, with numbers, ratio and verdict."""

    def get(series: str, rows: int, c: int) -> dict[str, Any] | None:
        return pooled.get(cell_key(series, "closed", rows, c))

    out = []
    c32 = TARGET_CONCURRENCY
    for series in JUDGED:
        who = LABELS[series]
        for rows in (1, 16):
            fg, ceiling, naive = (get(s, rows, c32) for s in (series, "constant", "naive"))
            if rows == 1 and fg and ceiling:
                ratio = fg["rps"] / ceiling["rps"]
                out.append(_target(
                    rows, f"{who}: rps at {c32} in flight >= {CEILING_RATIO:.0%} of the ceiling",
                    f"{fg['rps']:.0f} vs {ceiling['rps']:.0f} rps", f"{ratio:.2f}",
                    ratio >= CEILING_RATIO,
                ))  # fmt: skip
            if fg and naive:
                ratio, want = fg["rps"] / naive["rps"], NAIVE_RATIO[rows]
                out.append(_target(
                    rows, f"{who}: rps at {c32} in flight >= {want:g}x naive",
                    f"{fg['rps']:.0f} vs {naive['rps']:.0f} rps", f"{ratio:.2f}x", ratio >= want,
                ))  # fmt: skip
            if fg and "batching" in fg:
                per = fg["batching"]["requests_per_batch"]
                out.append(_target(
                    rows, f"{who}: requests per engine call at {c32} in flight >= "
                    f"{REQUESTS_PER_BATCH:g}", f"{per:.2f}", f"{per:.2f}",
                    per >= REQUESTS_PER_BATCH,
                ))  # fmt: skip
        out += _targets_at_one(
            series, get(series, 1, 1), get("constant", 1, 1), get("direct", 1, 1)
        )
    return out


def _targets_at_one(series: str, fg: Any, ceiling: Any, direct: Any) -> list[dict[str, Any]]:
    """At 1 in flight: p99 within 1.5x the ceiling's, p50 within 20 us of the bare server's."""
    out = []
    who = LABELS[series]
    if fg and ceiling and fg["latency_us"]["p99"] and ceiling["latency_us"]["p99"]:
        a, b = fg["latency_us"]["p99"], ceiling["latency_us"]["p99"]
        out.append(_target(
            1, f"{who}: p99 at 1 in flight <= {P99_AT_ONE_RATIO:g}x the ceiling's",
            f"{a:,.0f} vs {b:,.0f} us", f"{a / b:.2f}", a <= P99_AT_ONE_RATIO * b,
        ))  # fmt: skip
    if fg and direct and fg["latency_us"]["p50"] and direct["latency_us"]["p50"]:
        a, b = fg["latency_us"]["p50"], direct["latency_us"]["p50"]
        out.append(_target(
            1, f"{who}: p50 at 1 in flight <= bare server + {BATCH_P50_BUDGET_US:g} us",
            f"{a:,.0f} vs {b:,.0f} us", f"{a - b:+.0f} us", a - b <= BATCH_P50_BUDGET_US,
        ))  # fmt: skip
    return out


def user_target(pooled: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Sub-millisecond p99 at moderate load on one core (1-row requests, open loop)."""
    fg = [p for p in pooled.values() if p["series"] == "forestgate" and p["rows"] == 1]
    closed = [p for p in fg if p["mode"] == "closed"]
    opened = sorted((p for p in fg if p["mode"] == "open"), key=lambda p: p["load"])
    peak = max((p["rps"] for p in closed), default=0.0)

    def sub_ms(p: dict[str, Any]) -> bool:
        return p["latency_us"]["p99"] is not None and p["latency_us"]["p99"] < SUB_MS_US

    chosen = min(opened, key=lambda p: abs(p["load"] - MODERATE_SHARE * peak), default=None)
    fast = [p["load"] for p in opened if sub_ms(p)]
    return {
        "peak_rps": peak,
        "moderate_rate": chosen["load"] if chosen else None,
        "moderate_p99_us": chosen["latency_us"]["p99"] if chosen else None,
        "moderate_p50_us": chosen["latency_us"]["p50"] if chosen else None,
        "met": bool(chosen and sub_ms(chosen)),
        "max_sub_ms_rate": max(fast) if fast else None,
        "closed_sub_ms": sorted(
            (p["rows"], p["load"])
            for p in pooled.values()
            if p["series"] == "forestgate" and p["mode"] == "closed" and sub_ms(p)
        ),
    }


# ------------------------------------------------------------------------------------ output


def judge(results: dict[str, Any]) -> None:
    """Judge the targets and summarise the profile's raw stacks, in place."""
    profile = results.get("profile", {})
    if "stacks" in profile:
        profile["summary"] = summarize_profile(profile.pop("stacks"))
    results["targets"] = targets(results["pooled"], results["run"])
    for run in _overload_runs(results):
        results["targets"] += [
            _target(1, f"overload at 2x capacity, {LABELS[run['series']]}: {name}", "", "",
                    bool(met))
            for name, met in run["verdict"].items()
        ]  # fmt: skip
    results["user_target"] = user_target(results["pooled"])


def _overload_runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    runs = results.get("overload") or []
    return [runs] if isinstance(runs, dict) else runs  # older results hold one run


def _series_cells(pooled: Any, series: str, mode: str, rows: int) -> list[dict[str, Any]]:
    chosen = [
        p for p in pooled if p["series"] == series and p["mode"] == mode and p["rows"] == rows
    ]
    return sorted(chosen, key=lambda p: p["load"])


def plot(results: dict[str, Any], path: Path) -> None:
    plt = report.pyplot()
    pooled = list(results["pooled"].values())
    concurrency = results["run"]["concurrency"]
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    for r, rows in enumerate((1, 16)):
        rps_ax, p99_ax, open_ax = axes[r]
        for series, color in COLORS.items():
            style = {"color": color, "label": LABELS[series], "marker": "o"}
            closed = _series_cells(pooled, series, "closed", rows)
            if closed:
                xs = [p["load"] for p in closed]
                rps_ax.plot(xs, [p["rps"] for p in closed], **style)
                p99_ax.plot(xs, [p["latency_us"]["p99"] for p in closed], **style)
            opened = _series_cells(pooled, series, "open", rows)
            if opened:
                xs = [p["load"] for p in opened]
                open_ax.plot(xs, [p["latency_us"]["p99"] for p in opened], **style)
        what = f"{rows}-row requests"
        rps_ax.set(title=f"{what}: closed-loop throughput", ylabel="rps", ylim=(0, None))
        p99_ax.set(title=f"{what}: closed-loop p99", ylabel="p99 (us)", yscale="log")
        open_ax.set(title=f"{what}: open-loop p99 (from scheduled send)", yscale="log")
        open_ax.set(xlabel="offered rate (calls/s)", ylabel="p99 (us)")
        for ax in (rps_ax, p99_ax):
            ax.set(xlabel="calls in flight", xscale="log")
            ax.set_xticks(concurrency, [str(c) for c in concurrency])
        for ax in (p99_ax, open_ax):
            ax.axhline(SUB_MS_US, color="k", lw=0.6, ls=":")
        for ax in axes[r]:
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    env, run = results["environment"], results["run"]
    fig.suptitle(
        f"ForestGate server benchmark: servers on core {run['server_core']}, driver on core "
        f"{run['driver_core']}; {env['cpu']}; commit {env['commit']}"
    )
    report.save_plot(fig, path)
