"""Server benchmark: ForestGate over gRPC against the transport ceiling and a naive XGBoost server.

Every server is its own process pinned to core 0; the load comes from `forestgate load` (the
project's ghz-compatible load tool, clients/load/) pinned to core 1: a short warm-up run, then
the measured run, whose ghz JSON report (with every call's latency and status, and the tool's
own CPU) is read back. Closed loop (1, 8, 32, 128 calls in flight) and open loop (fixed rates,
as fractions of ForestGate's measured closed-loop peak), 1-row and 16-row requests, all servers
interleaved cell by cell and round by round, so every ratio compares numbers taken minutes
apart at most. Then py-spy samples ForestGate at 32 in flight.
Writes bench/results/server.{md,json,png}.
Run: .venv/bin/python bench/server.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import engine_data
import numpy as np
import provenance
import report
import server_diagnostics
import server_markdown
import server_overload
import server_report
from server_cells import Bench, engine_bench_running, overloaded, without_files, write_requests
from server_probes import check_answers, component_costs, profile
from server_process import ServerProcess
from server_setup import (
    CONCURRENCY,
    DELAY_US,
    DRIVER_CORE,
    EXECUTION_FLAGS,
    FORESTGATE,
    GATHER_US,
    HERE,
    LOAD_FLAGS,
    MAIN_SERIES,
    MODEL,
    N_TEST,
    N_TRAIN,
    OPEN_SERIES,
    OVERLOAD_FACTOR,
    OVERLOAD_S,
    PYTHON,
    RATE_FRACTIONS,
    ROWS,
    SERVER_CORE,
)

from forestgate.compiler.pipeline import compile_model

PACKAGES = ("grpcio", "uvloop", "protobuf", "numpy", "xgboost-cpu", "prometheus-client", "py-spy")


@dataclass(frozen=True)
class Options:
    """How long and how wide one run is (--quick: one short round at fewer loads)."""

    quick: bool
    rounds: int
    seconds: float
    warmup_s: float
    wait_minutes: float
    concurrency: tuple[int, ...]
    fractions: tuple[float, ...]

    @classmethod
    def of(cls, args: argparse.Namespace) -> Options:
        quick = args.quick
        wait = args.wait_engine_minutes
        return cls(
            quick=quick,
            rounds=args.rounds or (1 if quick else 3),
            seconds=args.seconds or (0.6 if quick else 2.0),
            warmup_s=args.warmup_s or (0.2 if quick else 0.5),
            wait_minutes=wait if wait is not None else (0 if quick else 30),
            concurrency=(1, 32) if quick else CONCURRENCY,
            fractions=(0.25, 0.5) if quick else RATE_FRACTIONS,
        )


def wait_for_engine_bench(minutes: float) -> dict[str, Any]:
    """Wait (up to `minutes`) until no bench/engine.py process runs, to reduce noise."""
    started = time.monotonic()
    waited = False
    while time.monotonic() - started < minutes * 60:
        if not engine_bench_running():
            break
        if not waited:
            print("waiting for bench/engine.py to finish ...", file=sys.stderr, flush=True)
            waited = True
        time.sleep(10)
    else:
        return {"waited_s": minutes * 60, "engine_bench_still_running": True}
    return {"waited_s": round(time.monotonic() - started), "engine_bench_still_running": False}


def prepare_model(cache: Path) -> dict[str, Any]:
    """The engine benchmark's xgb_med model (trained there or here, cached) compiled with
    `forestgate compile`'s default options into a repository of its own."""
    cache = cache.resolve()
    spec = engine_data.SPECS[MODEL]
    data = engine_data.load_data(cache, N_TRAIN, N_TEST)
    model_path, info = engine_data.train(spec, data, cache)
    repository = cache / "server" / info["key"] / "repository"
    bundle = repository / MODEL / "1"
    if not (bundle / "manifest.json").is_file():
        print(f"compiling {model_path} ...", file=sys.stderr, flush=True)
        compile_model(model_path, name=MODEL, version="1", repository=repository, overwrite=True)
    manifest = json.loads((bundle / "manifest.json").read_text())
    rows_file = cache / "server" / "rows.npy"
    np.save(rows_file, np.ascontiguousarray(data.x_test[:8192]))
    return {
        "spec": spec.shape,
        "model_path": str(model_path),
        "info": info,
        "repository": str(repository),
        "bundle": str(bundle),
        "compiler": manifest["compiler"]["resolved"],
        "model_stats": manifest["model_stats"],
        "rows_file": str(rows_file),
    }


def serve(repository: str, *flags: str) -> list[str]:
    """`forestgate serve` with its defaults but for `flags`, on free ports."""
    return [FORESTGATE, "serve", "--model-repository", repository, "--host", "127.0.0.1",
            "--port", "0", "--metrics-port", "0", "--log-level", "INFO", *flags]  # fmt: skip


def start_servers(model: dict[str, Any], approval: dict[str, Any]) -> dict[str, ServerProcess]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    repo = model["repository"]
    baseline = [PYTHON, str(HERE / "baseline.py")]
    commands = {key: serve(repo, *flags) for key, flags in EXECUTION_FLAGS.items()}
    commands |= {
        "fg_off1": serve(repo, "--max-batch-rows", "1"),
        "fg_off16": serve(repo, "--max-batch-rows", "16"),
        "constant": [*baseline, "constant"],
        "naive": [*baseline, "naive", "--model", model["model_path"]],
        "direct": [*baseline, "direct", "--bundle", model["bundle"]],
        "fg_delay": serve(repo, *EXECUTION_FLAGS["fg_pinned"], "--max-queue-delay-us",
                          str(DELAY_US)),
        "fg_gather": serve(repo, *EXECUTION_FLAGS["fg_pinned"], "--max-gather-us",
                           str(GATHER_US)),
        "approval": serve(approval["repository"]),
        "fg_p32": serve(repo, "--max-pending-calls", "32"),
    }  # fmt: skip
    servers = {key: ServerProcess(key, cmd, env) for key, cmd in commands.items()}
    # Workers: the server may use both cores (the driver stays on its own).
    for key, workers in (("fg_w1", "1"), ("fg_w2", "2")):
        cmd = serve(repo, "--workers", workers)
        servers[key] = ServerProcess(key, cmd, env, cores=f"{SERVER_CORE},{DRIVER_CORE}")
    for server in servers.values():
        server.wait_ready()
    return servers


def closed_loop(bench: Bench, opts: Options) -> None:
    series = list(MAIN_SERIES)
    for rnd in range(opts.rounds):
        print(f"closed loop, round {rnd + 1}/{opts.rounds}", file=sys.stderr, flush=True)
        order = series if rnd % 2 == 0 else series[::-1]
        for rows in ROWS:
            for c in opts.concurrency:
                for name in order:
                    bench.run_cell(name, rows, rnd, concurrency=c)


def open_loop(bench: Bench, opts: Options, rates: dict[int, list[float]]) -> None:
    """Every series at every rate, until a series cannot keep up with one."""
    for rnd in range(opts.rounds):
        print(f"open loop, round {rnd + 1}/{opts.rounds}", file=sys.stderr, flush=True)
        order = OPEN_SERIES if rnd % 2 == 0 else OPEN_SERIES[::-1]
        for rows in ROWS:
            given_up: set[str] = set()
            for rate in rates[rows]:
                for name in order:
                    if name in given_up:
                        continue
                    if overloaded(bench.run_cell(name, rows, rnd, rate=rate)):
                        given_up.add(name)


def measure(
    model: dict[str, Any],
    approval: dict[str, Any],
    servers: dict[str, ServerProcess],
    opts: Options,
    workdir: Path,
) -> dict[str, Any]:
    """Everything measured against the running servers, as the results' measured part."""
    agreement = check_answers(servers, model)
    costs = component_costs(model, opts.quick)
    x = np.load(model["rows_file"])
    request_files = {n: write_requests(x, n, workdir / f"requests-{n}.bin") for n in ROWS}
    bench = Bench(servers, request_files, workdir, opts.seconds, opts.warmup_s)
    closed_loop(bench, opts)
    peaks = server_report.peak_rps(bench.cells, "forestgate")
    rates = {
        rows: [max(50.0, round(peaks[rows] * f / 50) * 50) for f in opts.fractions] for rows in ROWS
    }
    open_loop(bench, opts, rates)
    diagnosed = server_diagnostics.waits(bench) + server_diagnostics.workers(bench)
    # The default server: twice the pinned one's peak is more than the driver can offer while
    # it shares its core with that engine thread.
    overload = [
        server_overload.run(bench, series, peaks[1], seconds=3.0 if opts.quick else OVERLOAD_S)
        for series in ("forestgate", "forestgate_p32")
    ]
    approval_cells = server_diagnostics.approval(bench, approval, workdir)
    print("profile", file=sys.stderr, flush=True)
    profiled = profile(bench, 3.0 if opts.quick else 8.0)
    return {
        "rates": {str(k): v for k, v in rates.items()},
        "ceilings_rps": {
            str(k): v for k, v in server_report.peak_rps(bench.cells, "constant").items()
        },
        "forestgate_peak_rps": {str(k): v for k, v in peaks.items()},
        "incidents": bench.incidents,
        "agreement_max_abs_diff": agreement,
        "component_costs_us": costs,
        "cells": without_files(bench.cells),
        "pooled": server_report.pool(bench.cells),
        "diagnostics": without_files(diagnosed),
        "overload": overload,
        "approval": without_files(approval_cells),
        "profile": profiled,
    }


def run_settings(opts: Options, measured: dict[str, Any], waited: dict[str, Any]) -> dict[str, Any]:
    """The `run` record's settings: loads, rates, cores, flags and the servers' options."""
    return {
        "quick": opts.quick,
        "rounds": opts.rounds,
        "seconds_per_cell": opts.seconds,
        "warmup_s": opts.warmup_s,
        "concurrency": list(opts.concurrency),
        "rate_fractions": list(opts.fractions),
        "rates": measured.pop("rates"),
        "ceilings_rps": measured.pop("ceilings_rps"),
        "forestgate_peak_rps": measured.pop("forestgate_peak_rps"),
        "server_core": SERVER_CORE,
        "driver_core": DRIVER_CORE,
        "load_flags": LOAD_FLAGS,
        "pinned": bool(shutil.which("taskset")),
        "engine_bench_wait": waited,
        "incidents": measured.pop("incidents"),
        "settings": {
            "forestgate": "the defaults (--execution thread --idle-inline-rows 16 "
            "--max-batch-rows 256)",
            "forestgate_pinned": f"--engine-cpus {DRIVER_CORE}",
            "forestgate_inline": "--execution inline",
            "forestgate_off": "--max-batch-rows 1 (1-row requests), 16 (16-row requests)",
            "forestgate_delay": f"--engine-cpus {DRIVER_CORE} --max-queue-delay-us {DELAY_US}",
            "forestgate_gather": f"--engine-cpus {DRIVER_CORE} --max-gather-us {GATHER_US}",
            "workers_1, workers_2": f"--workers 1 or 2, on cores {SERVER_CORE},{DRIVER_CORE}",
            "approval": "the defaults, the demo approval model (forestgate train --config demo)",
            "forestgate_p32": "--max-pending-calls 32 (overload only)",
        },
        "delay_us": DELAY_US,
        "gather_us": GATHER_US,
        "overload_factor": OVERLOAD_FACTOR,
    }


def write(results: dict[str, Any], out_dir: Path) -> None:
    """Judge the targets, summarise the profile, then server.png, server.md and server.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report.write_json(out_dir / "server.json", results)  # first: a report bug must not lose a run
    server_report.judge(results)
    server_report.plot(results, out_dir / "server.png")
    report.write(out_dir, "server", server_markdown.markdown(results), results)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    report.add_output_options(parser, "smoke run: one short round")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--seconds", type=float, help="measured seconds per cell and round")
    parser.add_argument("--warmup-s", type=float, help="unmeasured load before each cell")
    parser.add_argument(
        "--wait-engine-minutes", type=float, help="wait for bench/engine.py to end (default 30)"
    )
    parser.add_argument(
        "--report-from", type=Path, help="only rewrite server.md and server.png from a server.json"
    )
    return parser.parse_args()


def report_from(saved_json: Path, out_dir: Path) -> None:
    results = json.loads(saved_json.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    if "targets" not in results:  # saved before judging: the run's report failed
        server_report.judge(results)
        report.write_json(out_dir / "server.json", results)
    server_report.plot(results, out_dir / "server.png")
    (out_dir / "server.md").write_text(server_markdown.markdown(results))
    print(f"rewrote {out_dir}/server.md and server.png from {saved_json}", file=sys.stderr)


def main() -> None:
    args = parse_args()
    if args.report_from:
        report_from(args.report_from, args.out or args.report_from.parent)
        return
    opts = Options.of(args)
    out_dir = report.output_dir(args)
    waited = wait_for_engine_bench(opts.wait_minutes) if opts.wait_minutes else {"waited_s": 0}
    window = provenance.Window()
    model = prepare_model(args.cache)
    approval = server_diagnostics.prepare_approval(args.cache)
    servers = start_servers(model, approval)
    workdir = Path(tempfile.mkdtemp(prefix="forestgate-server-bench-"))
    try:
        measured = measure(model, approval, servers, opts, workdir)
    finally:
        for server in servers.values():
            server.stop()
    results = {
        "run": window.close(**run_settings(opts, measured, waited)),
        "environment": provenance.environment(PACKAGES),
        "model": model,
        "approval_model": approval,
        **measured,
    }
    write(results, out_dir)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
