"""Server probes: what bench/server.py measures besides the load cells: that every scoring
server answers alike, what each piece of a call costs in process, and a py-spy profile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from server_cells import Bench, infer_request
from server_process import ServerProcess
from server_setup import (
    DRIVER_CORE,
    MODEL,
    PROFILE_CONCURRENCY,
    PROFILE_RATE_HZ,
    PROFILE_ROWS,
    PROFILE_SERIES,
    PYTHON,
    SERIES,
    SERVER_CORE,
)


def check_answers(servers: dict[str, ServerProcess], model: dict[str, Any]) -> dict[str, float]:
    """Every scoring server must return the same scores as XGBoost for the same rows."""
    from forestgate.protos.inference import grpc_service_pb2 as pb

    x = np.load(model["rows_file"])[:16]
    request = infer_request(x)
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


def _median_us(fn: Callable[..., object], *args: Any, reps: int) -> float:
    """Median over 5 blocks of `reps` back-to-back calls of the mean time per call, in us."""
    samples = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(reps):
            fn(*args)
        samples.append((time.perf_counter_ns() - t0) / reps / 1e3)
    return float(np.median(samples))


def _call_costs(x: np.ndarray, compiled: Any, booster: Any, reps: int) -> dict[str, float]:
    """Parse, decode, encode and score 1- and 16-row requests, and the engine at other sizes."""
    from forestgate.protos.inference import grpc_service_pb2 as pb
    from forestgate.server import codec
    from forestgate.server.scoring import OUTPUT_NAME, InferResult, Tensor

    out: dict[str, float] = {}
    for n in (1, 16):
        block = np.ascontiguousarray(x[100 : 100 + n])
        request = infer_request(block)
        raw = request.SerializeToString()
        scores = compiled.predict(block)
        out[f"parse request ({n} rows)"] = _median_us(
            pb.ModelInferRequest.FromString, raw, reps=reps
        )
        out[f"codec.decode_infer_request ({n} rows)"] = _median_us(
            codec.decode_infer_request, request, reps=reps
        )
        result = InferResult(MODEL, "1", (Tensor(OUTPUT_NAME, "FP32", scores),), request.id)
        out[f"codec.encode_infer_response + serialize ({n} rows)"] = _median_us(
            lambda r=result: codec.encode_infer_response(r).SerializeToString(),
            reps=reps,
        )
        out[f"xgboost inplace_predict ({n} rows)"] = _median_us(
            booster.inplace_predict, block, reps=reps
        )
    for n in (1, 8, 16, 32, 128, 512):
        out[f"CompiledModel.predict ({n} rows)"] = _median_us(
            compiled.predict, np.ascontiguousarray(x[:n]), reps=reps
        )
    return out


def _evicted_costs(x: np.ndarray, compiled: Any, calls: int) -> dict[str, float]:
    """What a call costs when something else ran in between, as in a server: a 16 MB sweep
    evicts the engine's generated code and tree data from L1/L2 before each call."""
    junk = np.ones(2 * 1024 * 1024)
    out = {}
    for n in (1, 16, 128):
        samples = []
        for i in range(calls):
            start = i * n % 4096
            block = np.ascontiguousarray(x[start : start + n])
            junk[::8] += 1.0
            t0 = time.perf_counter_ns()
            compiled.predict(block)
            samples.append((time.perf_counter_ns() - t0) / 1e3)
        out[f"CompiledModel.predict ({n} rows), caches evicted first"] = float(np.median(samples))
    return out


def component_costs(model: dict[str, Any], quick: bool) -> dict[str, float]:
    """In-process cost of each piece of a ModelInfer call, median us, on the server's core."""
    import xgboost

    from forestgate.engine.model import CompiledModel

    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(SERVER_CORE)})
    try:
        x = np.load(model["rows_file"])
        compiled = CompiledModel.open(model["bundle"])
        booster = xgboost.Booster(model_file=model["model_path"])
        booster.set_param({"nthread": 1})
        costs = _call_costs(x, compiled, booster, reps=200 if quick else 2000)
        return costs | _evicted_costs(x, compiled, calls=50 if quick else 300)
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
