"""How fast `forestgate load` can drive: its rate and CPU per call against a do-nothing server.

The server is bench/baseline.py's constant server (raw bytes in, a pre-built response out),
pinned to core 0; `forestgate load` runs on core 1 (one process, then --procs 2 on the same
core, then --procs 2 free to use both cores). With the server's core the limit, the tool's
own ceiling is its CPU per call: rps / (its CPU share) is the rate one process would reach
with a core to itself. An open-loop run at a fixed rate shows the send lag at that rate.
Writes bench/results/load.{md,json}. Run: .venv/bin/python bench/load.py [--seconds 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import provenance
import report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FORESTGATE = str(Path(sys.executable).with_name("forestgate"))
TICKS = os.sysconf("SC_CLK_TCK")
ROW = [0.5] * 16
DATA = json.dumps({
    "model_name": "demo-xgb",
    "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [1, 16],
                "contents": {"fp32_contents": ROW}}],
})  # fmt: skip
CALL = "inference.GRPCInferenceService/ModelInfer"
PROTO = str(ROOT / "protos" / "inference" / "grpc_service.proto")
PACKAGES = ("grpcio", "uvloop", "protobuf")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def pinned(cores: str, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", cores, *command]
    return command


def start_server() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        pinned("0", [sys.executable, str(HERE / "baseline.py"), "constant"]),
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stderr is not None
    line = server.stderr.readline()
    match = re.search(r"listening on ([\d.]+:\d+)", line)
    if not match:
        server.kill()
        raise SystemExit(f"constant server did not start: {line!r}")
    threading.Thread(target=server.stderr.read, daemon=True).start()
    return server, match.group(1)


def run_load(target: str, server_pid: int, cores: str, *flags: str) -> dict[str, Any]:
    command = pinned(cores, [
        FORESTGATE, "load", "--insecure", "--proto", PROTO, "-i", str(ROOT / "protos"),
        "--call", CALL, "-d", DATA, "-O", "json", *flags, target,
    ])  # fmt: skip
    server_before = cpu_s(server_pid)
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=600)
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"forestgate load failed ({process.returncode}): {' '.join(flags)}")
    report = json.loads(out)
    return {"report": report, "wall_s": wall, "server_cpu_s": cpu_s(server_pid) - server_before}


def children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def fixed_cpu(target: str, server_pid: int, cores: str, *flags: str) -> float:
    """CPU of a one-call run: start-up, schema, connections and report, not the load."""
    before = children_cpu()
    run_load(target, server_pid, cores, "-n", "1", "-c", "1", *flags)
    return children_cpu() - before


def measure(
    target: str, server_pid: int, cores: str, *flags: str, fixed_s: float
) -> dict[str, Any]:
    before = children_cpu()
    result = run_load(target, server_pid, cores, *flags)
    load_cpu = max(children_cpu() - before - fixed_s, 0.0)
    report = result["report"]
    total_s = report["total"] / 1e9
    per_call_us = load_cpu / max(report["count"], 1) * 1e6
    percentiles = {d["percentage"]: d["latency"] for d in report["latencyDistribution"] or []}
    return {
        "flags": " ".join(flags),
        "cores": cores,
        "count": report["count"],
        "rps": report["rps"],
        "p50_us": percentiles.get(50, 0) / 1e3,
        "p99_us": percentiles.get(99, 0) / 1e3,
        "statuses": report["statusCodeDistribution"],
        # Less the fixed cost of a one-call run: the load's own CPU over the run's total.
        "load_cpu_share": load_cpu / total_s,
        "load_cpu_us_per_call": per_call_us,
        "server_cpu_share": result["server_cpu_s"] / total_s,
        "implied_one_core_rps": 1e6 / per_call_us if per_call_us else 0.0,
        "forestgate": report["forestgate"],
    }


CONFIGS = (  # (load cores, flags)
    ("1", ("-c", "32", "--connections", "4")),
    ("1", ("-c", "128", "--connections", "4")),
    ("1", ("-c", "128", "--connections", "4", "--procs", "2")),
    ("0,1", ("-c", "128", "--connections", "4", "--procs", "2")),
)


def median_run(
    target: str, server_pid: int, cores: str, flags: tuple[str, ...], *, fixed_s: float, rounds: int
) -> dict[str, Any]:
    """The round with the median rate: the machine is shared, so single runs are noisy."""
    runs = [measure(target, server_pid, cores, *flags, fixed_s=fixed_s) for _ in range(rounds)]
    runs.sort(key=lambda r: r["rps"])
    row = runs[len(runs) // 2]
    row["rps_rounds"] = [round(r["rps"]) for r in runs]
    return row


def measure_all(target: str, server_pid: int, seconds: float, rounds: int) -> list[dict[str, Any]]:
    """Every closed-loop configuration, then an open-loop run at 60 % of the best rate."""
    z = ("-z", f"{seconds:g}s")
    run_load(target, server_pid, "1", "-z", "1s", "-c", "32")  # warm-up
    fixed = {
        1: fixed_cpu(target, server_pid, "1"),
        2: fixed_cpu(target, server_pid, "1", "-c", "2", "--procs", "2"),
    }
    rows = []
    for cores, flags in CONFIGS:
        procs = 2 if "--procs" in flags else 1
        rows.append(
            median_run(target, server_pid, cores, (*z, *flags), fixed_s=fixed[procs], rounds=rounds)
        )
    peak = max(r["rps"] for r in rows[:2])
    rate = str(int(peak * 0.6 // 100 * 100))
    flags = (*z, "-c", "128", "--connections", "4", "--rps", rate)
    rows.append(median_run(target, server_pid, "1", flags, fixed_s=fixed[1], rounds=rounds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    report.add_output_options(parser, "1-second runs, one round each, for a smoke run")
    args = parser.parse_args()
    seconds, rounds = (1.0, 1) if args.quick else (args.seconds, args.rounds)
    window = provenance.Window()
    server, target = start_server()
    try:
        rows = measure_all(target, server.pid, seconds, rounds)
    finally:
        server.terminate()
        server.wait(10)
    results = {
        "environment": provenance.environment(PACKAGES),
        "run": window.close(seconds_per_run=seconds, rounds=rounds, quick=args.quick),
        "rows": rows,
    }
    report.write(report.output_dir(args), "load", markdown(results), results)


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """What the rows say: who sets the closed-loop rate, and the open-loop send lag."""
    open_loop = rows[-1]["forestgate"]
    lag = open_loop.get("sendLag", {})
    one = max(rows[:2], key=lambda r: r["rps"])
    return [
        f"One process drives {one['rps']:,.0f} rps of 1-row ModelInfer against the constant "
        f"server with the server's core {one['server_cpu_share']:.0%} busy: the server, not the "
        f"tool, sets that number. The tool's own CPU per call ({one['load_cpu_us_per_call']:.0f} "
        f"us) puts one process's ceiling at about {one['implied_one_core_rps']:,.0f} rps on a "
        "core of its own. On that same core `--procs 2` cannot add CPU (a difference there is "
        "the server's, still the limit), and given both cores it takes CPU from the server: "
        "more processes pay off only on a machine with cores to spare beyond the server's.",
        f"Open loop at {open_loop.get('intendedRps', 0):,.0f} rps: actual "
        f"{open_loop.get('actualRps', 0):,.0f} rps, send lag p50 {lag.get('p50', 0) / 1e3:.0f} us, "
        f"p99 {lag.get('p99', 0) / 1e3:.0f} us, max {lag.get('max', 0) / 1e3:.0f} us.",
    ]


def markdown(results: dict[str, Any]) -> str:
    rows, seconds = results["rows"], results["run"]["seconds_per_run"]
    doc = report.Markdown("`forestgate load`: the rate one process drives")
    doc.bullets([
        *report.provenance(results["environment"], results["run"]),
        "Each row is the median of its rounds by rps (other work on the machine makes the "
        "numbers noisier).",
        "Server: `bench/baseline.py constant` (a pre-serialized response, no parsing) on core 0.",
        "Load: `forestgate load --insecure --proto protos/inference/grpc_service.proto "
        "--call inference.GRPCInferenceService/ModelInfer -d <1-row ModelInfer, typed fp32> "
        f"-z {seconds:g}s` on the cores shown; closed loop unless --rps.",
        "load CPU: the command's CPU less that of a one-call run with the same flags "
        "(start-up, protoc, connections, report), over the run's `total`; implied one-core "
        "rps = 1 / (load CPU per call).",
    ])  # fmt: skip
    header = ["flags", "load cores", "rps", "p50 (us)", "p99 (us)", "load CPU share"]
    header += ["server CPU share", "load CPU per call (us)", "implied one-core rps"]
    doc.table(
        header,
        (
            [
                f"`{r['flags']}`",
                r["cores"],
                f"{r['rps']:,.0f}",
                f"{r['p50_us']:,.0f}",
                f"{r['p99_us']:,.0f}",
                f"{r['load_cpu_share']:.0%}",
                f"{r['server_cpu_share']:.0%}",
                f"{r['load_cpu_us_per_call']:.0f}",
                f"{r['implied_one_core_rps']:,.0f}",
            ]
            for r in rows
        ),
        left=2,
    )
    for paragraph in findings(rows):
        doc.para(paragraph)
    doc.para("Raw rows:").extend(["```json", json.dumps(rows, indent=1, default=str), "```"])
    return doc.text()


if __name__ == "__main__":
    main()
