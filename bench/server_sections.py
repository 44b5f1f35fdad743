"""Server sections: the diagnostics of issue #12 as Markdown: waiting for company, workers, the
overload run, the demo approval model, and the batch-size histogram at 32 in flight."""

from __future__ import annotations

from typing import Any

from server_format import closed, para, table, us
from server_report import LABELS, TARGET_CONCURRENCY

WAIT_SERIES = ("forestgate_pinned", "forestgate_delay", "forestgate_gather")
WORKER_SERIES = ("workers_1", "workers_2")


def _row(c: dict[str, Any]) -> list[str]:
    b, lat = c.get("batching") or {}, c["latency_us"]
    return [
        LABELS[c["series"]], str(c["rows"]), str(c["concurrency"]), f"{c['rps']:,.0f}",
        us(lat["p50"]), us(lat["p99"]), f"{b.get('requests_per_batch', 0):.2f}",
        us(b.get("compute_us_per_batch")), f"{c['server_cpu_util'] or 0:.2f}",
        f"{c['driver_cpu_util'] or 0:.2f}",
    ]  # fmt: skip


HEADER = ["server", "rows/request", "in flight", "rps", "p50", "p99", "requests/batch"]
HEADER += ["engine us/batch", "server CPU (cores)", "driver CPU (cores)"]


def _cells(results: dict[str, Any], series: tuple[str, ...]) -> list[dict[str, Any]]:
    return [c for c in results.get("diagnostics", []) if c["series"] in series]


def diagnostics(results: dict[str, Any]) -> list[str]:
    run = results["run"]
    out: list[str] = []
    waits = _cells(results, WAIT_SERIES)
    if waits:
        out += [
            "## Diagnostic: letting a backlog wait for company",
            "",
            *para(
                f"One round each, back to back, on the pinned engine thread: no wait, "
                f"`--max-queue-delay-us {run['delay_us']}` (a backlog waits until its oldest "
                f"request is that old) and `--max-gather-us {run['gather_us']}` (it waits "
                "only while the measured arrival gap is shorter than an engine call). Neither "
                "ever delays a request that finds the engine idle."
            ),
            *table(HEADER, [_row(c) for c in waits]),
        ]
    workers = _cells(results, WORKER_SERIES)
    if workers:
        out += [
            "## Diagnostic: workers (server free to use both cores)",
            "",
            *para(
                "`--workers 1` against `--workers 2`, each server process allowed on both "
                "cores, the driver still pinned to core 1 (so it competes with the server). "
                "The driver opens 4 connections, which SO_REUSEPORT spreads over the workers. "
                "Batch counters come from worker 0's metrics port only."
            ),
            *table(HEADER, [_row(c) for c in workers]),
        ]
    return out + overload(results) + approval(results) + histogram(results)


def overload(results: dict[str, Any]) -> list[str]:
    runs = results.get("overload") or []
    out: list[str] = []
    for o in [runs] if isinstance(runs, dict) else runs:
        out += _overload_run(o)
    return out


def _overload_run(o: dict[str, Any]) -> list[str]:
    rows = []
    for phase in ("reference", "overload", "recovery"):
        p = o[phase]
        ok = p["by_status_us"].get("OK", {})
        counts = ", ".join(f"{k} {v:,}" for k, v in sorted(p["counts"].items()))
        rate = o["overload_rps"] if phase == "overload" else o["normal_rps"]
        lag = p.get("send_lag_us", {})
        rows.append([
            phase, f"{rate:,}", counts, us(ok.get("p50")), us(ok.get("p99")),
            us(p.get("refused_p99_us")), us(lag.get("p99")), f"{p.get('driver_cpu') or 0:.2f}",
        ])  # fmt: skip
    rss = o["rss_mb"]
    verdicts = [f"- **{'MET' if met else 'MISSED'}** {name}" for name, met in o["verdict"].items()]
    return [
        f"## Overload: twice capacity, open loop ({LABELS[o['series']]})",
        "",
        *para(
            f"{LABELS[o['series']]}, 1-row requests. Capacity is its closed-loop "
            f"peak in this run ({o['peak_rps']:,.0f} rps): {o['normal_rps']:,} calls/s (80%) "
            f"for 3 s, then {o['overload_rps']:,} calls/s for {o['overload_s']:.0f} s, then "
            f"{o['normal_rps']:,} calls/s for 4 s. Latencies are the driver's, per status. "
            f"RSS during the overload: {rss['start']:.0f} MB at the start, {rss['max']:.0f} MB "
            f"at most, {rss['end']:.0f} MB at the end. Latency was normal again (every "
            "250 ms window's p99 within 1.5x the 80% run's p99, nothing refused) "
            + (
                f"{o['recovered_after_s']:.2f} s into the recovery run."
                if o["recovered_after_s"] is not None
                else "at no point of the recovery run."
            )
        ),
        *table(
            [
                "phase",
                "offered /s",
                "calls by status",
                "OK p50",
                "OK p99",
                "refused p99",
                "driver send lag p99",
                "driver CPU",
            ],
            rows,
            left=3,
        ),
        *verdicts,
        "",
    ]


def approval(results: dict[str, Any]) -> list[str]:
    cells = results.get("approval") or []
    if not cells:
        return []
    m = results["approval_model"]
    stats = m.get("model_stats", {})
    return [
        "## The demo approval model",
        "",
        *para(
            f"The model `make run` serves (`forestgate train --config demo --preset small`; "
            f"{m['num_features']} features, {stats.get('num_trees', '?')} trees), with "
            "ForestGate's defaults. Requests are rows drawn from the model's own training "
            "distributions (each feature's quantiles and missing share, from its manifest), so "
            "the trees take realistic paths; correlations between features are not kept."
        ),
        *table(HEADER, [_row(c) for c in cells]),
    ]


def histogram(results: dict[str, Any]) -> list[str]:
    """Batch sizes (rows per engine call) at 32 in flight, 1-row requests."""
    out: list[str] = []
    for series in ("forestgate", "forestgate_pinned"):
        cell = closed(results["pooled"], series, 1, TARGET_CONCURRENCY)
        hist = ((cell or {}).get("batching") or {}).get("batch_rows_histogram")
        if not hist:
            continue
        bounds = sorted(hist, key=lambda k: float("inf") if k == "+Inf" else float(k))
        total = hist[bounds[-1]] or 1
        rows, below = [], 0.0
        for le in bounds:
            count = hist[le] - below
            below = hist[le]
            if count:
                rows.append([f"<= {le}", f"{count:,.0f}", f"{count / total:.1%}"])
        out += [
            f"## Batch sizes: {LABELS[series]}, 1-row requests, {TARGET_CONCURRENCY} in flight",
            "",
            *table(["rows per engine call", "engine calls", "share"], rows),
        ]
    return out
