"""Python 3.11 against 3.12: the same ForestGate code served by each interpreter, interleaved.

Python 3.12 dropped the getpid() system call that 3.11's asyncio makes on every
get_running_loop, which the server profile shows on the event loop. This measures whether that
(and whatever else changed) makes ForestGate faster, before the Makefile moves. The 3.12
environment is built once in bench/.cache/venv-3.12 (`pip install -e .`, as `make` does).
Each execution design runs under both interpreters; the server benchmark's model, request
files, driver and cores are reused.
Writes bench/results/python_versions.{md,json}.
Run: .venv/bin/python bench/python_versions.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import provenance
import report
from server_cells import Bench, without_files, write_requests
from server_format import us
from server_process import ServerProcess
from server_setup import DRIVER_CORE, FORESTGATE, HERE, SERIES, SERVER_CORE

import server

DESIGNS = {
    "thread": [],
    "inline": ["--execution", "inline"],
    "pinned": ["--engine-cpus", DRIVER_CORE],
}
CELLS = ((1, 1), (1, 32), (16, 32))
INTERPRETERS = ("3.11", "3.12")


def venv_312(cache: Path) -> Path:
    """bench/.cache/venv-3.12/bin/forestgate, built once."""
    venv = cache / "venv-3.12"
    exe = venv / "bin" / "forestgate"
    if not exe.exists():
        python = _python312()
        print(f"building {venv} with {python} ...", file=sys.stderr, flush=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "--quiet"]
        subprocess.run([*pip, "-e", str(HERE.parent)], check=True)
    return exe


def _python312() -> str:
    """A Python 3.12 that runs: on PATH, or (pyenv shims refuse versions not made global)
    straight from pyenv's versions directory."""
    candidates = [shutil.which("python3.12") or ""]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    for python in filter(None, candidates):
        if subprocess.run([python, "-c", ""], capture_output=True, check=False).returncode == 0:
            return python
    raise SystemExit("python_versions: no working python3.12 found")


def start(model: dict[str, Any], exe312: Path) -> dict[str, ServerProcess]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    servers = {}
    for design, flags in DESIGNS.items():
        for version, exe in zip(INTERPRETERS, (FORESTGATE, str(exe312)), strict=True):
            key = f"{design}-{version}"
            cmd = server.serve(model["repository"], *flags)
            servers[key] = ServerProcess(key, [exe, *cmd[1:]], env)
            SERIES[key] = {1: key, 16: key}
    for process in servers.values():
        process.wait_ready()
    return servers


def measure(bench: Bench, rounds: int) -> list[dict[str, Any]]:
    keys = list(bench.servers)
    for rnd in range(rounds):
        order = keys if rnd % 2 == 0 else keys[::-1]
        for rows, c in CELLS:
            for key in order:
                bench.run_cell(key, rows, rnd, concurrency=c)
    return bench.cells


def markdown(results: dict[str, Any]) -> str:
    doc = report.Markdown("Python 3.11 against 3.12, the same server code")
    doc.para(__doc__.split("\n\n")[1].replace("\n", " "))
    env, run = results["environment"], results["run"]
    doc.bullets(report.provenance(env, run))
    doc.para(
        f"Servers on core {SERVER_CORE}, the driver on core {DRIVER_CORE}. Medians over rounds."
    )
    rows = []
    for (rows_n, c), design in ((cell, d) for cell in CELLS for d in DESIGNS):
        by = {}
        for version in INTERPRETERS:
            cells = [x for x in results["cells"] if x["series"] == f"{design}-{version}"
                     and x["rows"] == rows_n and x["concurrency"] == c]  # fmt: skip
            by[version] = (
                float(np.median([x["rps"] for x in cells])),
                float(np.median([x["latency_us"]["p50"] for x in cells])),
            )
        (rps11, p50_11), (rps12, p50_12) = by["3.11"], by["3.12"]
        rows.append([
            design, str(rows_n), str(c), f"{rps11:,.0f}", f"{rps12:,.0f}", f"{rps12 / rps11:.2f}",
            us(p50_11), us(p50_12),
        ])  # fmt: skip
    doc.table(
        ["design", "rows/request", "in flight", "rps 3.11", "rps 3.12", "ratio", "p50 3.11",
         "p50 3.12"],
        rows,
        left=1,
    )  # fmt: skip
    return doc.text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report.add_output_options(parser, "one short round")
    args = parser.parse_args()
    rounds, seconds = (1, 1.0) if args.quick else (3, 2.0)
    window = provenance.Window()
    model = server.prepare_model(HERE / ".cache")
    exe312 = venv_312(HERE / ".cache")
    servers = start(model, exe312)
    work = Path(tempfile.mkdtemp(prefix="forestgate-python-versions-"))
    x = np.load(model["rows_file"])
    files = {n: write_requests(x, n, work / f"requests-{n}.bin") for n in (1, 16)}
    try:
        cells = measure(Bench(servers, files, work, seconds, 0.5), rounds)
    finally:
        for process in servers.values():
            process.stop()
    results = {
        "run": window.close(rounds=rounds, seconds_per_cell=seconds, designs=DESIGNS),
        "environment": provenance.environment(("grpcio", "uvloop", "protobuf", "numpy")),
        "cells": without_files(cells),
    }
    report.write(report.output_dir(args), "python_versions", markdown(results), results)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
