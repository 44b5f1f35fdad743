"""What refusing costs, and what bounding gRPC core's backlog buys: the evidence behind
`--max-pending-calls`.

1. Closed loop, 1-row requests, 32 in flight, interleaved rounds: the constant server (answers
   every call), the refuse server (refuses every call with RESOURCE_EXHAUSTED, nothing else) and
   ForestGate with its defaults. CPU per answered call says what a refusal in Python costs
   against serving the call.
2. Twice ForestGate's peak, open loop, with `--max-pending-calls 128` (the default) and `0`
   (gRPC's own defaults): where the backlog goes, and how long accepted calls wait.
Writes bench/results/overload_costs.{md,json}.
Run: .venv/bin/python bench/overload_costs.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import provenance
import report
import server_overload
from server_cells import Bench, without_files, write_requests
from server_format import us
from server_process import ServerProcess
from server_setup import DRIVER_CORE, HERE, PYTHON, SERIES, SERVER_CORE

import server

CLOSED = ("constant", "refuse", "forestgate")
PENDING = {"forestgate": "128 (default)", "pending_0": "0 (gRPC's defaults)"}


def start(model: dict[str, Any]) -> dict[str, ServerProcess]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    baseline = [PYTHON, str(HERE / "baseline.py")]
    commands = {
        "constant": [*baseline, "constant"],
        "refuse": [*baseline, "refuse"],
        "forestgate": server.serve(model["repository"]),
        "pending_0": server.serve(model["repository"], "--max-pending-calls", "0"),
    }
    servers = {key: ServerProcess(key, cmd, env) for key, cmd in commands.items()}
    for key, process in servers.items():
        SERIES[key] = {1: key}
        process.wait_ready()
    return servers


def closed_loop(bench: Bench, rounds: int) -> list[dict[str, Any]]:
    for rnd in range(rounds):
        for key in CLOSED if rnd % 2 == 0 else CLOSED[::-1]:
            cell = bench.run_cell(key, 1, rnd, concurrency=32)
            answered = cell["ok"] + cell["error_count"]
            cell["answered_per_s"] = answered / cell["window_s"]
            cell["cpu_us_per_answer"] = 1e6 * cell["server_cpu_util"] / cell["answered_per_s"]
    return bench.cells


def markdown(results: dict[str, Any]) -> str:
    doc = report.Markdown("Overload costs: refusing in Python, and gRPC core's backlog")
    doc.para(__doc__.split("\n\n")[1].replace("\n", " "))
    env, run = results["environment"], results["run"]
    doc.bullets(report.provenance(env, run))
    doc.para(
        f"Servers on core {SERVER_CORE}, the driver on core {DRIVER_CORE}. Medians over rounds."
    )
    rows = []
    for key in CLOSED:
        cells = [c for c in results["cells"] if c["series"] == key]
        rows.append([
            key, f"{np.median([c['answered_per_s'] for c in cells]):,.0f}",
            f"{np.median([c['cpu_us_per_answer'] for c in cells]):,.0f}",
            ", ".join(sorted({s for c in cells for s in c["errors"]})) or "OK",
        ])  # fmt: skip
    doc.table(["server", "answered calls/s", "server CPU us per answer", "statuses"], rows, left=1)
    rows = []
    for o in results["overload"]:
        over = o["overload"]
        rows.append([
            PENDING[o["series"]], f"{o['overload_rps']:,}",
            ", ".join(f"{k} {v:,}" for k, v in sorted(over["counts"].items())),
            us(over["by_status_us"].get("OK", {}).get("p50")),
            us(over["by_status_us"].get("OK", {}).get("p99")), us(over["refused_p99_us"]),
            us(o["reference"]["ok_p99_us"]),
        ])  # fmt: skip
    doc.para(
        f"Overload: {run['overload_s']:.0f} s at twice ForestGate's closed-loop rate above, "
        "after 3 s at 80% (the reference p99)."
    )
    doc.table(
        ["--max-pending-calls", "offered /s", "calls by status", "OK p50", "OK p99",
         "refused p99", "p99 at 80%"],
        rows,
        left=1,
    )  # fmt: skip
    return doc.text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report.add_output_options(parser, "one short round")
    args = parser.parse_args()
    rounds, seconds, overload_s = (1, 1.0, 3.0) if args.quick else (3, 2.0, 10.0)
    window = provenance.Window()
    model = server.prepare_model(HERE / ".cache")
    servers = start(model)
    work = Path(tempfile.mkdtemp(prefix="forestgate-overload-costs-"))
    x = np.load(model["rows_file"])
    bench = Bench(servers, {1: write_requests(x, 1, work / "requests-1.bin")}, work, seconds, 0.5)
    try:
        cells = closed_loop(bench, rounds)
        peak = float(np.median([c["rps"] for c in cells if c["series"] == "forestgate"]))
        overload = [server_overload.run(bench, key, peak, seconds=overload_s) for key in PENDING]
    finally:
        for process in servers.values():
            process.stop()
    results = {
        "run": window.close(rounds=rounds, seconds_per_cell=seconds, overload_s=overload_s),
        "environment": provenance.environment(("grpcio", "uvloop", "protobuf", "numpy")),
        "cells": without_files(cells),
        "overload": overload,
    }
    report.write(report.output_dir(args), "overload_costs", markdown(results), results)
    shutil.rmtree(work, ignore_errors=True)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
