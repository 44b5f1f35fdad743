"""Server cells: one `forestgate load` run against one server at one load, read back as a cell.

A cell is a warm-up run, then a measured run whose ghz JSON report (every call's latency and
status, and the tool's own CPU) becomes rps, latency percentiles, status counts and CPU shares.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from server_process import ServerProcess
from server_report import percentiles_us
from server_setup import (
    CALL,
    CONNECTIONS,
    DEADLINE,
    DRIVER_CORE,
    FORESTGATE,
    LAG,
    MODEL,
    PROTO,
    PROTOS,
    REQUEST_POOL,
    SERIES,
)

from forestgate.clients.load.results import GO_STATUS


class DriverError(RuntimeError):
    """`forestgate load` failed (e.g. the server did not accept connections)."""


@dataclass
class Bench:
    """The running servers and the settings shared by every cell."""

    servers: dict[str, ServerProcess]
    request_files: dict[int, Path]  # rows per request -> length-delimited ModelInferRequests
    workdir: Path
    seconds: float
    warmup_s: float
    cells: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    runs: int = 0

    def run_cell(
        self, series: str, rows: int, rnd: int, *, concurrency: int = 0, rate: float = 0.0
    ) -> dict[str, Any]:
        """One cell (warm-up run, then measured run); a server that died or stopped answering
        is restarted and the cell retried once (the machine is shared, and a process can be
        killed under us)."""
        server = self.servers[SERIES[series][rows]]
        for attempt in (1, 2):
            if server.proc.poll() is not None:
                self.incident(server, series, rows, server.restart())
            try:
                return self._run_cell(series, rows, rnd, concurrency=concurrency, rate=rate)
            except DriverError as exc:
                if attempt == 2:
                    raise
                log_tail = "\n".join(server.log[-5:])
                print(f"driver failed, retrying: {exc}\n{log_tail}", file=sys.stderr)
                self.incident(server, series, rows, server.restart())
        raise AssertionError("unreachable")

    def incident(self, server: ServerProcess, series: str, rows: int, what: str) -> None:
        note = f"{time.strftime('%H:%M:%S')} {server.key} ({series}, {rows} rows) {what}; restarted"
        print("  " + note, file=sys.stderr, flush=True)
        self.incidents.append(note)

    def load(
        self, server: ServerProcess, rows: int, seconds: float, *, concurrency: int, rate: float,
        stop: str, report: str,
    ) -> str:  # fmt: skip
        """One `forestgate load` run on the driver's core, closed loop (-c) or open loop (--rps
        --async); returns its report in the given format."""
        cmd = [FORESTGATE, "load", "--insecure", "--proto", PROTO, "-i", PROTOS, "--call", CALL,
               "-B", str(self.request_files[rows]), "-t", DEADLINE, "-z",
               f"{round(seconds * 1000)}ms", "--duration-stop", stop, "-O", report]  # fmt: skip
        if concurrency:
            cmd += ["-c", str(concurrency), "--connections", str(min(CONNECTIONS, concurrency))]
        else:
            cmd += ["--rps", str(round(rate)), "--async", "-c", str(CONNECTIONS)]
            cmd += ["--connections", str(CONNECTIONS)]
        cmd.append(server.target)
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", DRIVER_CORE, *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DriverError(f"{' '.join(cmd)}:\n{done.stderr[-1500:]}")
        return done.stdout

    def _run_cell(
        self, series: str, rows: int, rnd: int, *, concurrency: int = 0, rate: float = 0.0
    ) -> dict[str, Any]:
        server = self.servers[SERIES[series][rows]]
        load = f"c{concurrency}" if concurrency else f"r{round(rate)}"
        # Numbered: a diagnostic rerun of the same cell must not overwrite a round's latencies.
        self.runs += 1
        latencies = self.workdir / f"{self.runs:04d}-{series}-{rows}-{load}-{rnd}.npy"
        # Warm-up: the same load, unmeasured; calls in flight at its end are cancelled.
        self.load(
            server, rows, self.warmup_s, concurrency=concurrency, rate=rate, stop="close",
            report="summary",
        )  # fmt: skip
        server.settle()
        # Calls in flight at the time limit are waited for and counted, and the run's length
        # (the report's total) runs to the last answer: the server's CPU, read around the
        # whole command, then covers the same calls as the rate (an idle server uses ~0.2%).
        before = server.batch_counters()
        cpu_before = server.cpu_s()
        text = self.load(
            server, rows, self.seconds, concurrency=concurrency, rate=rate, stop="wait",
            report="json",
        )  # fmt: skip
        server_cpu_s = server.cpu_s() - cpu_before
        after = server.batch_counters()
        result = cell_from_report(json.loads(text), rows, concurrency, rate, latencies)
        result["server_cpu_util"] = server_cpu_s / result["total_s"] if result["total_s"] else None
        if before:
            result["batching"] = batching(before, after)
        result |= {"series": series, "round": rnd, "loadavg": os.getloadavg()[0]}
        result["target"] = server.target
        result["engine_bench_running"] = engine_bench_running()
        result["latencies_file"] = str(latencies)
        result["settle_s"] = server.settle()
        self.cells.append(result)
        _progress(result, load)
        return result


# Go's status names (ghz's report) -> gRPC Python's, as the report's error counts use them.
GRPC_STATUS = {GO_STATUS[code.value[0]]: code.name for code in grpc.StatusCode}


def batching(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """ForestGate's own view of a run, from its counters before and after: batches, requests
    and rows per batch, engine time per batch, mean queue wait, ModelInfer calls it saw."""
    delta = {k: after[k] - before[k] for k in before}
    batches = delta["forestgate_batch_rows_count"]
    requests = delta["forestgate_queue_wait_seconds_count"]

    def per(total: float, count: float) -> float:
        return total / count if count else 0

    return {
        "batches": batches,
        "rows_per_batch": per(delta["forestgate_batch_rows_sum"], batches),
        "requests_per_batch": per(requests, batches),
        "compute_us_per_batch": 1e6 * per(delta["forestgate_compute_seconds_sum"], batches),
        "queue_wait_us_mean": 1e6 * per(delta["forestgate_queue_wait_seconds_sum"], requests),
        "infer_calls_seen": delta["infer_calls"],
        "infer_not_ok_counted": delta["infer_not_ok"],
        "batch_rows_histogram": {
            k.removeprefix("batch_rows_le_"): v for k, v in delta.items() if k.startswith("batch_")
        },
    }


def _progress(result: dict[str, Any], load: str) -> None:
    lat = result["latency_us"]
    print(
        f"  round {result['round']} {result['series']:15s} rows {result['rows']:2d} {load:>7s}: "
        f"{result['rps']:7.0f} rps p50 {_fmt(lat['p50'])} p99 {_fmt(lat['p99'])} us, errors "
        f"{result['error_count']}, cpu server {_fmt(result['server_cpu_util'], 2)} driver "
        f"{_fmt(result['driver_cpu_util'], 2)}",
        file=sys.stderr,
        flush=True,
    )


def cell_from_report(
    report: dict[str, Any], rows: int, concurrency: int, rate: float, latencies: Path
) -> dict[str, Any]:
    """One measured `forestgate load` run (its -O json report) as a cell: rps, percentiles of
    the OK calls (saved for pooling), counts by status and the tool's own CPU share."""
    details = report["details"] or []
    if len(details) != report["count"]:
        raise RuntimeError(f"report keeps {len(details)} of {report['count']} calls")
    ok = np.array([d["latency"] for d in details if d["status"] == "OK"], dtype=np.int64)
    np.save(latencies, ok)
    errors = {
        GRPC_STATUS.get(status, status): n
        for status, n in report["statusCodeDistribution"].items()
        if status != "OK"
    }
    extra = report["forestgate"]
    total_s = report["total"] / 1e9
    result: dict[str, Any] = {
        "mode": "open" if rate else "closed",
        "rows": rows,
        "concurrency": concurrency,
        "rate": rate,
        "connections": report["options"].get("connections", 1),
        "end_reason": report.get("endReason", ""),
        "total_s": total_s,
        "sent": extra["scheduled"] if rate else report["count"],
        "ok": int(ok.size),
        "errors": errors,
        "error_count": sum(errors.values()),
        "latency_us": percentiles_us(ok),
        "driver_cpu_util": extra["cpu"] / report["total"] if report["total"] else None,
    }
    if rate:
        # The window is the scheduled interval; answers may come after it (the run waits for
        # them), so answered rps (to the last answer) falls below the offered rate when the
        # server falls behind, even though every call is eventually answered.
        result["window_s"] = extra["scheduled"] / rate
        result["answering_s"] = total_s
        result["answered_rps"] = ok.size / total_s if total_s else 0.0
        lag = extra.get("sendLag", {})  # over every call, as the tool reports it
        result["send_lag_us"] = {k: lag[k] / 1e3 if k in lag else None for k in LAG}
    else:
        result["window_s"] = total_s
    result["rps"] = ok.size / result["window_s"] if result["window_s"] else 0.0
    return result


def without_files(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells as results keep them: without the path of their (temporary) latency file."""
    return [{k: v for k, v in c.items() if k != "latencies_file"} for c in cells]


def infer_request(block: np.ndarray, model: str = MODEL) -> Any:
    """A ModelInferRequest as ForestGate's clients send rows: one FP32 input, raw contents."""
    from forestgate.protos.inference import grpc_service_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input__0", datatype="FP32", shape=list(block.shape))
    request.raw_input_contents.append(block.tobytes())
    return request


def write_requests(x: np.ndarray, rows: int, path: Path, model: str = MODEL) -> Path:
    """Length-delimited serialized ModelInferRequests (`forestgate load -B`), each `rows`
    consecutive real rows."""
    from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]

    with path.open("wb") as out:
        for start in range(0, min(len(x) - rows + 1, REQUEST_POOL * rows), rows):
            block = np.ascontiguousarray(x[start : start + rows], dtype=np.float32)
            message = infer_request(block, model).SerializeToString()
            out.write(_VarintBytes(len(message)) + message)
    return path


def _fmt(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def overloaded(cell: dict[str, Any]) -> bool:
    """An open-loop cell whose server did not keep up with the offered rate."""
    lat = cell["latency_us"]
    offered = cell["sent"] or 1
    return (
        cell["ok"] < 0.95 * offered
        or lat["p50"] is None
        or lat["p50"] > 100_000
        or cell["error_count"] > 0.01 * offered
    )


def engine_bench_running() -> bool:
    found = subprocess.run(
        ["pgrep", "-f", "bench/engine.py"], capture_output=True, text=True, check=False
    ).stdout.split()
    return any(int(pid) != os.getpid() for pid in found)
