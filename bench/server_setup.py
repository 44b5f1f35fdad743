"""Server benchmark setup: the servers, cores, model and load every part of bench/server.py uses."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
FORESTGATE = str(Path(PYTHON).with_name("forestgate"))
PROTO = str(HERE.parent / "protos" / "inference" / "grpc_service.proto")
PROTOS = str(HERE.parent / "protos")  # the import path of PROTO's imports
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
    "forestgate_pinned": {1: "fg_pinned", 16: "fg_pinned"},
    "forestgate_inline": {1: "fg_inline", 16: "fg_inline"},
    "forestgate_off": {1: "fg_off1", 16: "fg_off16"},
    "constant": {1: "constant", 16: "constant"},
    "naive": {1: "naive", 16: "naive"},
    "direct": {1: "direct", 16: "direct"},
    "forestgate_delay": {1: "fg_delay", 16: "fg_delay"},  # diagnostic only
    "forestgate_gather": {1: "fg_gather", 16: "fg_gather"},  # diagnostic only
    "workers_1": {1: "fg_w1", 16: "fg_w1"},  # diagnostic, on both cores
    "workers_2": {1: "fg_w2", 16: "fg_w2"},  # diagnostic, on both cores
    "approval": {1: "approval", 16: "approval"},  # the demo model, its own requests
    "forestgate_p32": {1: "fg_p32", 16: "fg_p32"},  # overload only
}
# The execution designs issue #12 compares: the engine on a thread of its own on the server's
# core (the default), that thread pinned to the other core, and the engine on the event loop.
EXECUTION_FLAGS = {
    "fg": [],
    "fg_pinned": ["--engine-cpus", DRIVER_CORE],
    "fg_inline": ["--execution", "inline"],
}
MAIN_SERIES = (
    "forestgate", "forestgate_pinned", "forestgate_inline", "forestgate_off", "constant", "naive",
    "direct",
)  # fmt: skip
# Diagnostic: does letting the queue wait for company (max_queue_delay_us) raise throughput?
DELAY_US = 500
DIAGNOSTIC_CELLS = ((1, 32), (1, 128), (16, 32))
# Diagnostic: offered load beyond capacity, to see where the backlog goes and who sheds it.
OVERLOAD_FACTOR = 2.0
OVERLOAD_S = 30.0  # the overload run (quick: 3 s)
OPEN_SERIES = ("forestgate", "forestgate_pinned", "forestgate_off", "constant", "naive")
GATHER_US = 500  # diagnostic: max_gather_us, against none
WORKER_CELLS = ((1, 32), (1, 128))  # workers 1 against 2, server on both cores
APPROVAL_CELLS = ((1, 1), (1, 32), (16, 32))
PROFILE_SERIES, PROFILE_ROWS, PROFILE_CONCURRENCY = "forestgate", 1, 32
PROFILE_RATE_HZ = 100
