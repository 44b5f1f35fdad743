"""What a decision costs: Score against 1-row ModelInfer on the demo models, through reflection.

`forestgate load` drives each call from its config in bench/ghz/ (the same files SREs give ghz)
against one server on the server core, with the driver on the other core. Cells run side by
side in interleaved rounds, at 1 and 32 calls in flight; each Score cell is compared with the
ModelInfer cell of the same round, as ratios of p50, p99 and throughput. The cases are 1 and 6
candidate routes (6 is every route in the packaged route table), with and without retry advice
(which adds a second model call, one row per candidate delay, and the guardrail).
Writes bench/results/decision.{md,json}.
Run: .venv/bin/python bench/decision.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import provenance
import report
from server_format import us
from server_process import ServerProcess
from server_setup import DRIVER_CORE, FORESTGATE, HERE

import server

LOADS = (1, 32)
CASES = {
    "modelinfer": ("modelinfer-1row.json", "ModelInfer, 1 row (reference)"),
    "score1": ("score-1route.json", "Score, 1 route"),
    "score6": ("score-6routes.json", "Score, 6 routes"),
    "score6r": ("score-6routes-retry.json", "Score, 6 routes + retry advice"),
}
TARGET_LATENCY_RATIO, TARGET_RPS_RATIO = 1.5, 0.6
GHZ = HERE / "ghz"


def demo_models(cache: Path) -> Path:
    """The demo approval and retry bundles, trained once into the cache as `make run` does."""
    repository = cache / "decision-models"
    if not (repository / "retry").is_dir():
        shutil.rmtree(cache / "decision-data", ignore_errors=True)
        subprocess.run(
            [FORESTGATE, "train", "--data", str(cache / "decision-data"), "--repository",
             str(repository), "--report", str(cache / "decision-reports"), "--config", "demo",
             "--preset", "small", "--run", "bench"],
            check=True,
        )  # fmt: skip
    return repository


def run_cell(target: str, case: str, concurrency: int, seconds: float, rnd: int) -> dict[str, Any]:
    config = GHZ / CASES[case][0]
    cmd = [FORESTGATE, "load", "--config", str(config), "-z", f"{round(seconds * 1000)}ms",
           "-n", "0", "-c", str(concurrency), "--connections", str(min(4, concurrency)),
           "--duration-stop", "wait", "-t", "2s", "-O", "json", target]  # fmt: skip
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", DRIVER_CORE, *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"forestgate load failed: {done.stderr[-2000:]}")
    ghz = json.loads(done.stdout)
    latency = {d["percentage"]: d["latency"] / 1000 for d in ghz["latencyDistribution"]}
    return {
        "case": case, "concurrency": concurrency, "round": rnd, "rps": ghz["rps"],
        "count": ghz["count"], "p50_us": latency[50], "p99_us": latency[99],
        "statuses": ghz["statusCodeDistribution"],
    }  # fmt: skip


def summarize(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per load and case: medians over rounds, and ratios against ModelInfer of each round."""
    rows = []
    for concurrency in LOADS:
        here = [c for c in cells if c["concurrency"] == concurrency]
        reference = {c["round"]: c for c in here if c["case"] == "modelinfer"}
        for case in CASES:
            mine = [c for c in here if c["case"] == case]
            rows.append({
                "concurrency": concurrency, "case": case,
                "rps": float(np.median([c["rps"] for c in mine])),
                "p50_us": float(np.median([c["p50_us"] for c in mine])),
                "p99_us": float(np.median([c["p99_us"] for c in mine])),
                "rps_ratio": _ratio(mine, reference, "rps"),
                "p50_ratio": _ratio(mine, reference, "p50_us"),
                "p99_ratio": _ratio(mine, reference, "p99_us"),
                "statuses": sorted({s for c in mine for s in c["statuses"]}),
            })  # fmt: skip
    return rows


def _ratio(cells: list[dict[str, Any]], reference: dict[int, dict[str, Any]], figure: str) -> float:
    """The median over rounds of a figure against the reference cell of the same round."""
    return float(np.median([c[figure] / reference[c["round"]][figure] for c in cells]))


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in rows:
        if r["case"] != "score6":
            continue
        latency_ok = max(r["p50_ratio"], r["p99_ratio"]) <= TARGET_LATENCY_RATIO
        rps_ok = r["rps_ratio"] >= TARGET_RPS_RATIO
        lines.append(
            f"Score with 6 routes, {r['concurrency']} in flight: p50 {r['p50_ratio']:.2f}x and "
            f"p99 {r['p99_ratio']:.2f}x of 1-row ModelInfer (target <= {TARGET_LATENCY_RATIO}x): "
            f"{'met' if latency_ok else 'missed'}; throughput {r['rps_ratio']:.2f}x (target >= "
            f"{TARGET_RPS_RATIO}x): {'met' if rps_ok else 'missed'}."
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    doc = report.Markdown("Decisions: what Score costs against 1-row ModelInfer")
    doc.para(__doc__.split("\n\n")[1].replace("\n", " "))
    doc.bullets(report.provenance(results["environment"], results["run"]))
    table = [
        [
            str(r["concurrency"]), CASES[r["case"]][1], f"{r['rps']:,.0f}", us(r["p50_us"]),
            us(r["p99_us"]), f"{r['rps_ratio']:.2f}", f"{r['p50_ratio']:.2f}",
            f"{r['p99_ratio']:.2f}", ", ".join(r["statuses"]),
        ]
        for r in results["summary"]
    ]  # fmt: skip
    doc.table(
        ["in flight", "call", "calls/s", "p50", "p99", "calls/s x ModelInfer",
         "p50 x ModelInfer", "p99 x ModelInfer", "statuses"],
        table, left=2,
    )  # fmt: skip
    doc.bullets(verdicts(results["summary"]))
    return doc.text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report.add_output_options(parser, "one short round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = parser.parse_args()
    rounds, seconds = (1, 1.0) if args.quick else (args.rounds, 3.0)
    window = provenance.Window()
    repository = demo_models(HERE / ".cache")
    process = ServerProcess("decision", server.serve(str(repository)),
                            dict(os.environ, OMP_NUM_THREADS="1"))  # fmt: skip
    cells = []
    try:
        process.wait_ready()
        for concurrency in LOADS:  # warm-up, not reported
            run_cell(process.target, "score6r", concurrency, seconds, -1)
        for rnd in range(rounds):
            for concurrency in LOADS:
                order = list(CASES) if rnd % 2 == 0 else list(CASES)[::-1]
                for case in order:
                    cells.append(run_cell(process.target, case, concurrency, seconds, rnd))
                    print(f"round {rnd} c{concurrency} {case}: {cells[-1]['rps']:.0f}/s",
                          file=sys.stderr)  # fmt: skip
    finally:
        process.stop()
    results = {
        "run": window.close(rounds=rounds, seconds_per_cell=seconds),
        "environment": provenance.environment(("grpcio", "uvloop", "protobuf", "numpy")),
        "cells": cells,
        "summary": summarize(cells),
    }
    report.write(report.output_dir(args), "decision", markdown(results), results)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
