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
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import engine_data
import grpc
import numpy as np
import server_markdown
import server_report
from server_report import percentiles_us

from forestgate.clients.load.results import GO_STATUS
from forestgate.compiler.pipeline import compile_model

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
FORESTGATE = str(Path(PYTHON).with_name("forestgate"))
PROTO = str(HERE.parent / "protos" / "inference" / "grpc_service.proto")
CALL = "inference.GRPCInferenceService/ModelInfer"
SERVER_CORE, DRIVER_CORE = "0", "1"  # the driver is `forestgate load`
CONNECTIONS = 4  # HTTP/2 connections per run (fewer when fewer calls are in flight)
DEADLINE = "2s"  # per call
REQUEST_POOL = 4096  # distinct requests per size, sent round-robin
LAG = ("p50", "p99", "max")
# The flags of every run, as the report quotes them (-z is the warm-up or measured seconds).
LOAD_FLAGS = {
    "common": f"--insecure --proto protos/inference/grpc_service.proto --call {CALL} "
    f"-B <length-delimited requests> -t {DEADLINE} -z <seconds> --duration-stop wait -O json",
    "closed": f"-c N --connections min(N, {CONNECTIONS})",
    "open": f"--rps R --async -c {CONNECTIONS} --connections {CONNECTIONS}",
    "warmup": "the same load with --duration-stop close",
}
MODEL = "xgb_med"  # the engine benchmark's realistic model: 300 trees, depth 8, 64 features
N_TRAIN, N_TEST = 100_000, 20_000  # bench/engine.py's data set, so its cache is reused
ROWS = (1, 16)
CONCURRENCY = (1, 8, 32, 128)
RATE_FRACTIONS = (0.1, 0.25, 0.5, 0.7, 0.85)  # of ForestGate's closed-loop peak
# Series -> server process per request size. "Batching off" must still accept 16-row
# requests, so for those it is max_batch_rows=16: a batch can then hold one request only.
SERIES = {
    "forestgate": {1: "fg", 16: "fg"},
    "forestgate_off": {1: "fg_off1", 16: "fg_off16"},
    "constant": {1: "constant", 16: "constant"},
    "naive": {1: "naive", 16: "naive"},
    "direct": {1: "direct", 16: "direct"},
    "forestgate_delay": {1: "fg_delay", 16: "fg_delay"},  # diagnostic only
}
MAIN_SERIES = ("forestgate", "forestgate_off", "constant", "naive", "direct")
# Diagnostic: does letting the queue wait for company (max_queue_delay_us) raise throughput?
DELAY_US = 500
DIAGNOSTIC_CELLS = ((1, 32), (1, 128), (16, 32))
# Diagnostic: offered load beyond capacity, to see where the backlog goes and who sheds it.
OVERLOAD_FACTOR = 1.5
OPEN_SERIES = ("forestgate", "forestgate_off", "constant", "naive")
PROFILE_SERIES, PROFILE_ROWS, PROFILE_CONCURRENCY = "forestgate", 1, 32
PROFILE_RATE_HZ = 100


class DriverError(RuntimeError):
    """`forestgate load` failed (e.g. the server did not accept connections)."""


class ServerProcess:
    """A server subprocess on SERVER_CORE; reads its JSON log for the ports it bound."""

    def __init__(self, key: str, cmd: list[str], env: dict[str, str]) -> None:
        self.key = key
        self.cmd = ["taskset", "-c", SERVER_CORE, *cmd] if shutil.which("taskset") else cmd
        self.env = env
        self.log: list[str] = []
        self._spawn()

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stderr=subprocess.PIPE, text=True, env=self.env)
        self.port = 0
        self.metrics_port = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def restart(self) -> str:
        """Replace a dead or unresponsive server; returns what happened to the old one."""
        code = self.proc.poll()
        what = f"exited with {code}" if code is not None else "was alive but not answering"
        self.stop()
        self._spawn()
        self.wait_ready()
        return what

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip())
            try:
                msg = str(json.loads(line).get("msg", ""))
            except (json.JSONDecodeError, AttributeError):
                continue
            if m := re.match(r"listening on [\d.]+:(\d+)", msg):
                self.port = int(m.group(1))
            if m := re.match(r"metrics on http://[\d.]+:(\d+)/", msg):
                self.metrics_port = int(m.group(1))

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.port:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.key} did not start: {' '.join(self.cmd)}\n" + "\n".join(self.log[-20:])
                )
            time.sleep(0.05)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def settle(self, timeout_s: float = 10.0) -> float:
        """Wait until the server stops using CPU (leftover calls from an overloaded cell)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            before = self.cpu_s()
            time.sleep(0.1)
            if self.cpu_s() - before < 0.01:
                break
        return time.monotonic() - started

    def batch_counters(self) -> dict[str, float]:
        """ForestGate's batch histograms (sums and counts), from its /metrics endpoint."""
        if not self.metrics_port:
            return {}
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        out: dict[str, float] = {}
        for name in (
            "forestgate_batch_rows_sum",
            "forestgate_batch_rows_count",
            "forestgate_compute_seconds_sum",
            "forestgate_queue_wait_seconds_sum",
            "forestgate_queue_wait_seconds_count",
        ):
            m = re.search(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M)
            out[name] = float(m.group(1)) if m else 0.0
        # Every ModelInfer the server saw, and those it did not answer OK.
        calls = re.findall(r"^forestgate_requests_total\{([^}]*)\} (\S+)$", text, re.M)
        infer = [(labels, float(v)) for labels, v in calls if 'method="ModelInfer"' in labels]
        out["infer_calls"] = sum(v for _, v in infer)
        out["infer_not_ok"] = sum(v for labels, v in infer if 'code="OK"' not in labels)
        return out


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
        cmd = [FORESTGATE, "load", "--insecure", "--proto", PROTO, "--call", CALL,
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
        report = json.loads(text)
        after = server.batch_counters()
        result = cell_from_report(report, rows, concurrency, rate, latencies)
        result["server_cpu_util"] = server_cpu_s / result["total_s"] if result["total_s"] else None
        if before:
            delta = {k: after[k] - before[k] for k in before}
            batches = delta["forestgate_batch_rows_count"]
            requests = delta["forestgate_queue_wait_seconds_count"]
            result["batching"] = {
                "batches": batches,
                "rows_per_batch": delta["forestgate_batch_rows_sum"] / batches if batches else 0,
                "requests_per_batch": requests / batches if batches else 0,
                "compute_us_per_batch": 1e6 * delta["forestgate_compute_seconds_sum"] / batches
                if batches
                else 0,
                "queue_wait_us_mean": 1e6 * delta["forestgate_queue_wait_seconds_sum"] / requests
                if requests
                else 0,
                "infer_calls_seen": delta["infer_calls"],
                "infer_not_ok_counted": delta["infer_not_ok"],
            }
        result |= {"series": series, "round": rnd, "loadavg": os.getloadavg()[0]}
        result["target"] = server.target
        result["engine_bench_running"] = engine_bench_running()
        result["latencies_file"] = str(latencies)
        result["settle_s"] = server.settle()
        self.cells.append(result)
        lat = result["latency_us"]
        print(
            f"  round {rnd} {series:15s} rows {rows:2d} {load:>7s}: {result['rps']:7.0f} rps "
            f"p50 {_fmt(lat['p50'])} p99 {_fmt(lat['p99'])} us, errors {result['error_count']}, "
            f"cpu server {_fmt(result['server_cpu_util'], 2)} driver "
            f"{_fmt(result['driver_cpu_util'], 2)}",
            file=sys.stderr,
            flush=True,
        )
        return result


# Go's status names (ghz's report) -> gRPC Python's, as the report's error counts use them.
GRPC_STATUS = {GO_STATUS[code.value[0]]: code.name for code in grpc.StatusCode}


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


def write_requests(x: np.ndarray, rows: int, path: Path) -> Path:
    """Length-delimited serialized ModelInferRequests (`forestgate load -B`), each `rows`
    consecutive real rows as ForestGate's clients send them: one FP32 input, raw contents."""
    from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]

    from forestgate.protos.inference import grpc_service_pb2 as pb

    with path.open("wb") as out:
        for start in range(0, min(len(x) - rows + 1, REQUEST_POOL * rows), rows):
            block = np.ascontiguousarray(x[start : start + rows], dtype=np.float32)
            request = pb.ModelInferRequest(model_name=MODEL)
            request.inputs.add(name="input__0", datatype="FP32", shape=list(block.shape))
            request.raw_input_contents.append(block.tobytes())
            message = request.SerializeToString()
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


def start_servers(model: dict[str, Any]) -> dict[str, ServerProcess]:
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def serve(max_batch_rows: int, delay_us: int = 0) -> list[str]:
        return [FORESTGATE, "serve", "--model-repository", model["repository"], "--host",
                "127.0.0.1", "--port", "0", "--metrics-port", "0", "--execution", "inline",
                "--max-batch-rows", str(max_batch_rows), "--max-queue-delay-us", str(delay_us),
                "--log-level", "INFO"]  # fmt: skip

    baseline = [PYTHON, str(HERE / "baseline.py")]
    commands = {
        "fg": serve(256),
        "fg_off1": serve(1),
        "fg_off16": serve(16),
        "constant": [*baseline, "constant"],
        "naive": [*baseline, "naive", "--model", model["model_path"]],
        "direct": [*baseline, "direct", "--bundle", model["bundle"]],
        "fg_delay": serve(256, DELAY_US),
    }
    servers = {key: ServerProcess(key, cmd, env) for key, cmd in commands.items()}
    for server in servers.values():
        server.wait_ready()
    return servers


def check_answers(servers: dict[str, ServerProcess], model: dict[str, Any]) -> dict[str, float]:
    """Every scoring server must return the same scores as XGBoost for the same rows."""
    from forestgate.protos.inference import grpc_service_pb2 as pb

    x = np.load(model["rows_file"])[:16]
    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="input__0", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    scores = {}
    for key in ("fg", "fg_off16", "naive", "direct"):
        with grpc.insecure_channel(servers[key].target) as channel:
            call = channel.unary_unary(
                "/inference.GRPCInferenceService/ModelInfer",
                request_serializer=pb.ModelInferRequest.SerializeToString,
                response_deserializer=pb.ModelInferResponse.FromString,
            )
            response = call(request, timeout=10)
        scores[key] = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
    diffs = {k: float(np.abs(v - scores["naive"]).max()) for k, v in scores.items()}
    if max(diffs.values()) > 1e-5:
        raise RuntimeError(f"servers disagree with XGBoost: {diffs}")
    return diffs


def component_costs(model: dict[str, Any], quick: bool) -> dict[str, float]:
    """In-process cost of each piece of a ModelInfer call, median us, on the server's core."""
    import xgboost

    from forestgate.engine.model import CompiledModel
    from forestgate.protos.inference import grpc_service_pb2 as pb
    from forestgate.server import codec

    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(SERVER_CORE)})
    try:
        x = np.load(model["rows_file"])
        compiled = CompiledModel.open(model["bundle"])
        booster = xgboost.Booster(model_file=model["model_path"])
        booster.set_param({"nthread": 1})
        out: dict[str, float] = {}
        reps = 200 if quick else 2000

        def timed(name: str, fn: Any, *args: Any) -> None:
            samples = []
            for _ in range(5):
                t0 = time.perf_counter_ns()
                for _ in range(reps):
                    fn(*args)
                samples.append((time.perf_counter_ns() - t0) / reps / 1e3)
            out[name] = float(np.median(samples))

        for n in (1, 16):
            block = np.ascontiguousarray(x[100 : 100 + n])
            request = pb.ModelInferRequest(model_name=MODEL)
            request.inputs.add(name="input__0", datatype="FP32", shape=[n, block.shape[1]])
            request.raw_input_contents.append(block.tobytes())
            raw = request.SerializeToString()
            scores = compiled.predict(block)
            timed(f"parse request ({n} rows)", pb.ModelInferRequest.FromString, raw)
            timed(
                f"codec.decode_infer_request ({n} rows)",
                lambda r=request, b=block: codec.decode_infer_request(
                    r, num_features=b.shape[1], max_rows=256
                ),
            )
            timed(
                f"codec.encode_infer_response + serialize ({n} rows)",
                lambda r=request, s=scores: codec.encode_infer_response(
                    r, model_name=MODEL, version="1", scores=s
                ).SerializeToString(),
            )
            timed(f"xgboost inplace_predict ({n} rows)", booster.inplace_predict, block)
        for n in (1, 8, 16, 32, 128, 512):
            timed(
                f"CompiledModel.predict ({n} rows)", compiled.predict, np.ascontiguousarray(x[:n])
            )
        # What a call costs when something else ran in between, as in a server: a 16 MB
        # sweep evicts the engine's generated code and tree data from L1/L2 before each call.
        junk = np.ones(2 * 1024 * 1024)
        for n in (1, 16, 128):
            samples = []
            for i in range(50 if quick else 300):
                start = i * n % 4096
                block = np.ascontiguousarray(x[start : start + n])
                junk[::8] += 1.0
                t0 = time.perf_counter_ns()
                compiled.predict(block)
                samples.append((time.perf_counter_ns() - t0) / 1e3)
            out[f"CompiledModel.predict ({n} rows), caches evicted first"] = float(
                np.median(samples)
            )
        return out
    finally:
        os.sched_setaffinity(0, affinity)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a process's main thread and of its other threads by name, from /proc."""
    out: dict[str, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = (
            "main (event loop)"
            if task.name == str(pid)
            else stat[stat.index("(") + 1 : stat.rindex(")")]
        )
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def profile(bench: Bench, seconds: float) -> dict[str, Any]:
    """py-spy on ForestGate at 32 in flight; the raw stacks are summarised by the report."""
    spy = shutil.which("py-spy") or str(Path(PYTHON).with_name("py-spy"))
    if not Path(spy).exists():
        return {"error": "py-spy not installed (pip install -e '.[dev]')"}
    server = bench.servers[SERIES[PROFILE_SERIES][PROFILE_ROWS]]
    raw = bench.workdir / "profile.raw"
    saved = bench.seconds
    bench.seconds = seconds + 2
    # --native shows the engine and gRPC's C core; py-spy then pauses the process for each
    # sample, so the rate is kept low (the closed loop keeps the server saturated regardless).
    spy_cmd = [spy, "record", "--pid", str(server.proc.pid), "--rate", str(PROFILE_RATE_HZ),
               "--duration", str(round(seconds)), "--format", "raw", "--native",
               "--output", str(raw)]  # fmt: skip
    if shutil.which("taskset"):
        spy_cmd = ["taskset", "-c", DRIVER_CORE, *spy_cmd]

    def sample() -> None:
        time.sleep(bench.warmup_s + 1.5)  # the warm-up run and the measured run's start-up
        threads_before = thread_cpu(server.proc.pid)
        done = subprocess.run(spy_cmd, capture_output=True, text=True, check=False)
        threads_after = thread_cpu(server.proc.pid)
        state["spy"] = done.stderr[-2000:]
        state["threads"] = {
            k: (threads_after.get(k, 0) - threads_before.get(k, 0)) / seconds for k in threads_after
        }

    state: dict[str, Any] = {}
    sampler = threading.Thread(target=sample)
    sampler.start()
    cell = bench.run_cell(PROFILE_SERIES, PROFILE_ROWS, -1, concurrency=PROFILE_CONCURRENCY)
    sampler.join()
    bench.cells.remove(cell)
    bench.seconds = saved
    if not raw.is_file():
        return {"error": "py-spy wrote nothing", "spy": state.get("spy", "")}
    return {
        "cell": {k: cell[k] for k in ("rps", "latency_us", "server_cpu_util", "driver_cpu_util")},
        "seconds": seconds,
        "rate_hz": PROFILE_RATE_HZ,
        "stacks": raw.read_text(),
        "thread_cpu_util": state.get("threads", {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: one short round")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--out", type=Path, help="default bench/results (--quick: .cache/quick)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--seconds", type=float, help="measured seconds per cell and round")
    parser.add_argument("--warmup-s", type=float, help="unmeasured load before each cell")
    parser.add_argument(
        "--wait-engine-minutes", type=float, help="wait for bench/engine.py to end (default 30)"
    )
    parser.add_argument(
        "--report-from", type=Path, help="only rewrite server.md and server.png from a server.json"
    )
    args = parser.parse_args()
    if args.report_from:
        results = json.loads(args.report_from.read_text())
        out_dir = args.out or args.report_from.parent
        out_dir.mkdir(parents=True, exist_ok=True)
        server_report.plot(results, out_dir / "server.png")
        (out_dir / "server.md").write_text(server_markdown.markdown(results))
        return
    quick = args.quick
    rounds = args.rounds or (1 if quick else 3)
    seconds = args.seconds or (0.6 if quick else 2.0)
    warmup_s = args.warmup_s or (0.2 if quick else 0.5)
    wait_minutes = (
        args.wait_engine_minutes if args.wait_engine_minutes is not None else (0 if quick else 30)
    )
    out_dir = args.out or (args.cache / "quick" if quick else HERE / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    concurrency = (1, 32) if quick else CONCURRENCY
    fractions = (0.25, 0.5) if quick else RATE_FRACTIONS

    waited = wait_for_engine_bench(wait_minutes) if wait_minutes else {"waited_s": 0}
    started = time.time()
    load_start = os.getloadavg()
    model = prepare_model(args.cache)
    servers = start_servers(model)
    workdir = Path(tempfile.mkdtemp(prefix="forestgate-server-bench-"))
    try:
        agreement = check_answers(servers, model)
        costs = component_costs(model, quick)
        x = np.load(model["rows_file"])
        request_files = {n: write_requests(x, n, workdir / f"requests-{n}.bin") for n in ROWS}
        bench = Bench(servers, request_files, workdir, seconds, warmup_s)
        series = list(MAIN_SERIES)
        for rnd in range(rounds):
            print(f"closed loop, round {rnd + 1}/{rounds}", file=sys.stderr, flush=True)
            order = series if rnd % 2 == 0 else series[::-1]
            for rows in ROWS:
                for c in concurrency:
                    for name in order:
                        bench.run_cell(name, rows, rnd, concurrency=c)
        ceilings = server_report.peak_rps(bench.cells, "constant")
        peaks = server_report.peak_rps(bench.cells, "forestgate")
        rates = {
            rows: [max(50.0, round(peaks[rows] * f / 50) * 50) for f in fractions] for rows in ROWS
        }
        for rnd in range(rounds):
            print(f"open loop, round {rnd + 1}/{rounds}", file=sys.stderr, flush=True)
            order = OPEN_SERIES if rnd % 2 == 0 else OPEN_SERIES[::-1]
            for rows in ROWS:
                given_up: set[str] = set()
                for rate in rates[rows]:
                    for name in order:
                        if name in given_up:
                            continue
                        if overloaded(bench.run_cell(name, rows, rnd, rate=rate)):
                            given_up.add(name)
        print("diagnostic: queue delay", file=sys.stderr, flush=True)
        diagnostics = []
        for rows, c in DIAGNOSTIC_CELLS:
            for name in ("forestgate", "forestgate_delay"):
                diagnostics.append(bench.run_cell(name, rows, -2, concurrency=c))
                bench.cells.pop()
        print("diagnostic: overload", file=sys.stderr, flush=True)
        overload_rate = round(peaks[1] * OVERLOAD_FACTOR / 50) * 50
        diagnostics.append(bench.run_cell("forestgate", 1, -2, rate=overload_rate))
        bench.cells.pop()
        print("profile", file=sys.stderr, flush=True)
        profiled = profile(bench, 3.0 if quick else 8.0)
        pooled = server_report.pool(bench.cells)
    finally:
        for server in servers.values():
            server.stop()
    results = {
        "run": {
            "quick": quick,
            "rounds": rounds,
            "seconds_per_cell": seconds,
            "warmup_s": warmup_s,
            "concurrency": list(concurrency),
            "rate_fractions": list(fractions),
            "rates": {str(k): v for k, v in rates.items()},
            "ceilings_rps": {str(k): v for k, v in ceilings.items()},
            "forestgate_peak_rps": {str(k): v for k, v in peaks.items()},
            "server_core": SERVER_CORE,
            "driver_core": DRIVER_CORE,
            "load_flags": LOAD_FLAGS,
            "pinned": bool(shutil.which("taskset")),
            "wall_s": round(time.time() - started),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "engine_bench_wait": waited,
            "incidents": bench.incidents,
            "settings": {
                "forestgate": "--max-batch-rows 256 --max-queue-delay-us 0 --execution inline",
                "forestgate_off": "--max-batch-rows 1 (1-row requests), 16 (16-row requests)",
                "forestgate_delay": f"--max-batch-rows 256 --max-queue-delay-us {DELAY_US}",
            },
            "delay_us": DELAY_US,
            "overload_factor": OVERLOAD_FACTOR,
        },
        "environment": server_report.environment(),
        "model": model,
        "agreement_max_abs_diff": agreement,
        "component_costs_us": costs,
        "cells": [{k: v for k, v in c.items() if k != "latencies_file"} for c in bench.cells],
        "pooled": pooled,
        "diagnostics": [{k: v for k, v in c.items() if k != "latencies_file"} for c in diagnostics],
        "profile": profiled,
    }
    server_report.finish(results, out_dir)
    (out_dir / "server.md").write_text(server_markdown.markdown(results))
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {out_dir / 'server.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
