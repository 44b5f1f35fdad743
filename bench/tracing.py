"""What tracing costs on the hot path: 1-row ModelInfer with tracing off, at 1% and 100% head
sampling, and at 1% plus a slow threshold that makes about 5% of calls slow.

Every traced server exports over OTLP/gRPC to a real receiver (tests/otlp.py, counting spans)
on the driver's core. Cells run side by side in interleaved rounds, at 32 calls in flight and
at 1, so throughput and p50 compare as ratios against the untraced server of the same round.
Each series runs as two server processes and a round's figure is their mean: two processes of
the same build differ by up to 3%, as much as the effect being measured.
Spans exported per call, calls exported as slow and spans dropped are totals over the run.
The slow thresholds are the 95th percentile of the untraced server's own handling time at each
load (interpolated in its latency histogram), with no rate limit on forced exports, so the
fraction of calls exported for being slow is measured, not assumed.
Writes bench/results/tracing.{md,json}.
Run: .venv/bin/python bench/tracing.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import provenance
import report
from prometheus_client.parser import text_string_to_metric_families
from server_cells import Bench, without_files, write_requests
from server_format import us
from server_process import ServerProcess
from server_setup import DRIVER_CORE, HERE, PYTHON, SERIES

import server

LOADS = (32, 1)
SERIES_OF = {
    "before": "off, older commit installed (--before)",
    "after": "off, this commit installed (--after)",
    "off": "tracing off",
    "p1": "1% sampled",
    "p100": "100% sampled",
}
SLOW = {32: "slow_c32", 1: "slow_c1"}  # 1% plus slow calls, one threshold per load
TARGET_RPS_RATIO, TARGET_P50_DELTA_US = 0.97, 15.0
# Server processes per series. Two processes of one build differ by up to 3% in throughput
# (measured: memory layout, hash seeds), as much as the effect measured; each cell's figure
# is the mean of the series' processes.
REPLICAS = 2
EXPORT_SCHEDULE_S = 5.0  # OTEL_BSP_SCHEDULE_DELAY's default, which the traced servers keep


def receiver() -> tuple[subprocess.Popen[str], int]:
    cmd = [PYTHON, "-m", "tests.otlp"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", DRIVER_CORE, *cmd]
    proc = subprocess.Popen(cmd, cwd=HERE.parent, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def traced_env(port: int, ratio: float) -> dict[str, str]:
    return dict(
        os.environ, OMP_NUM_THREADS="1", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=str(ratio),
    )  # fmt: skip


def scrape(process: ServerProcess) -> dict[str, float]:
    """Every sample of the server's /metrics, keyed by name and sorted labels."""
    url = f"http://127.0.0.1:{process.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def handling_p95_us(before: dict[str, float], after: dict[str, float]) -> float:
    """The 95th percentile of ModelInfer handling time between two scrapes, interpolated
    linearly inside its histogram bucket."""
    prefix = "forestgate_request_latency_seconds_bucket{le="
    buckets = []
    for key, value in after.items():
        if key.startswith(prefix) and "method=ModelInfer" in key:
            le = key[len(prefix) :].split(",")[0]
            buckets.append((float(le), value - before.get(key, 0.0)))
    buckets.sort()
    total = buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= 0.95 * total:
            if bound == float("inf"):
                return lower_bound * 1e6
            share = (0.95 * total - lower_count) / max(count - lower_count, 1.0)
            return (lower_bound + share * (bound - lower_bound)) * 1e6
        lower_bound, lower_count = bound, count
    raise AssertionError("no ModelInfer calls in the histogram")


def trace_counts(samples: dict[str, float]) -> dict[str, float]:
    """Spans exported and dropped, calls exported as slow or failed, and calls, from one scrape
    of a server's counters (zeros for an untraced server)."""

    def total(prefix: str, *having: str) -> float:
        return sum(
            value for key, value in samples.items()
            if key.startswith(prefix) and all(part in key for part in having)
        )  # fmt: skip

    return {
        "exported": total("forestgate_trace_spans_exported_total"),
        "dropped": total("forestgate_trace_spans_dropped_total"),
        "forced": total("forestgate_trace_forced_total", "outcome=exported"),
        "calls": total("forestgate_requests_total", "method=ModelInfer"),
    }


def measure(bench: Bench, key: str, concurrency: int, rnd: int) -> None:
    """Every process of series `key`, one cell each, in an order that alternates by round."""
    replicas = range(REPLICAS) if rnd % 2 == 0 else reversed(range(REPLICAS))
    for replica in replicas:
        measure_process(bench, f"{key}-r{replica}", concurrency, rnd)["series"] = key


def measure_process(bench: Bench, name: str, concurrency: int, rnd: int) -> dict[str, Any]:
    process = bench.servers[name]
    before = scrape(process)
    cell = bench.run_cell(name, 1, rnd, concurrency=concurrency)
    cell["process"] = name
    after = scrape(process)
    cell["handling_p95_us"] = handling_p95_us(before, after)
    return cell


def start(
    repository: str, port: int, bench_dir: Path, seconds: float, installs: dict[str, str]
) -> Bench:
    plain = dict(os.environ, OMP_NUM_THREADS="1")
    commands = {
        "off": (server.serve(repository), plain),
        "p1": (server.serve(repository), traced_env(port, 0.01)),
        "p100": (server.serve(repository), traced_env(port, 1.0)),
    }
    for key, executable in installs.items():  # untraced servers from non-editable installs
        commands[key] = ([executable, *server.serve(repository)[1:]], plain)
    bench = Bench({}, {}, bench_dir, seconds, 0.5)
    for key, (cmd, env) in commands.items():
        add_series(bench, key, cmd, env)
    return bench


def add_series(bench: Bench, key: str, cmd: list[str], env: dict[str, str]) -> None:
    """REPLICAS server processes for one series, named key-r0, key-r1, ..."""
    for replica in range(REPLICAS):
        name = f"{key}-r{replica}"
        process = ServerProcess(name, cmd, env)
        process.wait_ready()
        bench.servers[name] = process
        SERIES[name] = {1: name}


def add_slow_servers(bench: Bench, repository: str, port: int) -> dict[int, float]:
    """One 1%-plus-slow server per load, its threshold from the untraced server's handling."""
    thresholds = {}
    for concurrency, key in SLOW.items():
        p95 = float(np.median([
            c["handling_p95_us"] for c in bench.cells
            if c["series"] == "off" and c["concurrency"] == concurrency
        ]))  # fmt: skip
        thresholds[concurrency] = p95
        flags = ("--trace-slow-us", str(max(1, round(p95))), "--trace-forced-per-s", "0")
        add_series(bench, key, server.serve(repository, *flags), traced_env(port, 0.01))
    return thresholds


def run_rounds(bench: Bench, rounds: int, keys: dict[int, list[str]]) -> None:
    for rnd in range(rounds):
        for concurrency in LOADS:
            order = keys[concurrency] if rnd % 2 == 0 else keys[concurrency][::-1]
            for key in order:
                measure(bench, key, concurrency, rnd)


def run_totals(bench: Bench) -> dict[str, dict[str, float]]:
    """Per series, the export counters over the whole run, read once every export thread has
    had its 5 s schedule to send what the last cells queued. Exports mostly happen while a
    server is idle (the others are measured), so per-cell deltas would miss them."""
    time.sleep(EXPORT_SCHEDULE_S + 1.0)
    totals: dict[str, dict[str, float]] = {}
    for name, process in bench.servers.items():
        series = name.rsplit("-r", 1)[0]
        counts = trace_counts(scrape(process))
        total = totals.setdefault(series, dict.fromkeys(counts, 0.0))
        for key, value in counts.items():
            total[key] += value
    return totals


def summarize(
    cells: list[dict[str, Any]], totals: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    """Per load and series: medians over rounds of the mean over the series' processes, and
    ratios against `off` in the same round."""
    rows = []
    for concurrency in LOADS:
        here = [c for c in cells if c["concurrency"] == concurrency]
        for key in ("before", "after", "off", "p1", "p100", SLOW[concurrency]):
            mine = [c for c in here if c["series"] == key]
            if not mine:
                continue
            rps, p50 = round_means(here, key, "rps"), round_means(here, key, "p50")
            off_rps, off_p50 = round_means(here, "off", "rps"), round_means(here, "off", "p50")
            total = totals[key]
            calls = max(total["calls"], 1.0)
            rows.append({
                "concurrency": concurrency, "series": key,
                "rps": float(np.median(list(rps.values()))),
                "rps_ratio": float(np.median([v / off_rps[r] for r, v in rps.items()])),
                "p50_us": float(np.median(list(p50.values()))),
                "p50_delta_us": float(np.median([v - off_p50[r] for r, v in p50.items()])),
                "p99_us": float(np.median([c["latency_us"]["p99"] for c in mine])),
                "cpu_us_per_call": float(np.median([
                    1e6 * c["server_cpu_util"] / c["rps"] for c in mine if c["rps"]
                ])),
                "spans_per_call": total["exported"] / calls,
                "dropped_spans": total["dropped"],
                "forced_share": total["forced"] / calls,
                "errors": sorted({s for c in mine for s in c["errors"]}),
            })  # fmt: skip
    return rows


def round_means(cells: list[dict[str, Any]], series: str, figure: str) -> dict[int, float]:
    """round -> the mean over the series' processes of a cell figure (rps, or p50)."""
    by_round: dict[int, list[float]] = {}
    for c in cells:
        if c["series"] == series:
            value = c["rps"] if figure == "rps" else c["latency_us"]["p50"]
            by_round.setdefault(c["round"], []).append(value)
    return {rnd: float(np.mean(values)) for rnd, values in by_round.items()}


def label(key: str) -> str:
    return SERIES_OF.get(key, "1% + slow")


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    p1 = {r["concurrency"]: r for r in rows if r["series"] == "p1"}
    ratio, delta = p1[32]["rps_ratio"], p1[1]["p50_delta_us"]
    by = {(r["concurrency"], r["series"]): r for r in rows}
    lines = [
        f"Untraced, this commit against the older one, both installed alike, {c} in flight: "
        f"{by[(c, 'after')]['rps'] / by[(c, 'before')]['rps']:.3f} of its throughput, p50 "
        f"{by[(c, 'after')]['p50_us'] - by[(c, 'before')]['p50_us']:+.0f} us."
        for c in LOADS
        if (c, "before") in by and (c, "after") in by
    ]
    return [
        *lines,
        f"1% sampling, 32 in flight: {ratio:.3f} of the untraced throughput (target >= "
        f"{TARGET_RPS_RATIO}): {'met' if ratio >= TARGET_RPS_RATIO else 'missed'}.",
        f"1% sampling, 1 in flight: p50 {delta:+.1f} us against untraced (target <= "
        f"+{TARGET_P50_DELTA_US:.0f} us): {'met' if delta <= TARGET_P50_DELTA_US else 'missed'}.",
    ]


def markdown(results: dict[str, Any]) -> str:
    doc = report.Markdown("Tracing: the cost of OpenTelemetry spans on 1-row ModelInfer")
    doc.para(__doc__.split("\n\n")[1].replace("\n", " "))
    doc.bullets(report.provenance(results["environment"], results["run"]))
    thresholds = ", ".join(
        f"{c} in flight: {t:.0f} us" for c, t in results["slow_thresholds_us"].items()
    )
    doc.para(f"Slow thresholds (untraced handling p95): {thresholds}.")
    table = [
        [
            str(r["concurrency"]), label(r["series"]), f"{r['rps']:,.0f}", f"{r['rps_ratio']:.3f}",
            us(r["p50_us"]), f"{r['p50_delta_us']:+.1f}", us(r["p99_us"]),
            f"{r['cpu_us_per_call']:.0f}", f"{r['spans_per_call']:.3f}",
            f"{r['forced_share']:.1%}", f"{r['dropped_spans']:,.0f}",
            ", ".join(r["errors"]) or "OK",
        ]
        for r in results["summary"]
    ]  # fmt: skip
    doc.table(
        ["in flight", "tracing", "calls/s", "x off", "p50", "p50 - off (us)", "p99",
         "server CPU us/call", "spans exported/call", "exported as slow", "spans dropped",
         "statuses"],
        table, left=2,
    )  # fmt: skip
    doc.bullets(verdicts(results["summary"]))
    return doc.text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report.add_output_options(parser, "one short round")
    for key, what in (("before", "an older commit"), ("after", "this commit")):
        parser.add_argument(
            f"--{key}", default="", metavar="FORESTGATE",
            help=f"a `forestgate` executable pip-installed (not editable) from {what}, run "
            "untraced beside the others, so that two commits are compared installed alike",
        )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = parser.parse_args()
    rounds, seconds = (1, 1.0) if args.quick else (args.rounds, 3.0)
    window = provenance.Window()
    model = server.prepare_model(HERE / ".cache")
    repository = str(model["repository"])
    sink, port = receiver()
    work = Path(tempfile.mkdtemp(prefix="forestgate-tracing-"))
    installs = {key: getattr(args, key) for key in ("before", "after") if getattr(args, key)}
    bench = start(repository, port, work, seconds, installs)
    x = np.load(model["rows_file"])
    bench.request_files[1] = write_requests(x, 1, work / "requests-1.bin")
    try:
        for concurrency in LOADS:  # calibration of the slow thresholds, not reported
            measure(bench, "off", concurrency, -1)
        thresholds = add_slow_servers(bench, repository, port)
        bench.cells.clear()
        first = list(installs)
        keys = {c: [*first, "off", "p1", "p100", SLOW[c]] for c in LOADS}
        run_rounds(bench, rounds, keys)
        totals = run_totals(bench)
    finally:
        for process in bench.servers.values():
            process.stop()
        sink.terminate()
        received = sink.communicate(timeout=30)[0].strip()
    results = {
        "run": window.close(rounds=rounds, seconds_per_cell=seconds, **installs),
        "environment": provenance.environment(
            ("grpcio", "uvloop", "protobuf", "opentelemetry-sdk", "numpy")
        ),
        "slow_thresholds_us": thresholds,
        "receiver": received,
        "cells": without_files(bench.cells),
        "totals": totals,
        "summary": summarize(bench.cells, totals),
    }
    report.write(report.output_dir(args), "tracing", markdown(results), results)
    shutil.rmtree(work, ignore_errors=True)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
