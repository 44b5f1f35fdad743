"""Engine benchmark: ForestGate's compiled library against the other tree-ensemble engines.

Single-threaded per-call and per-row latency of CompiledModel.predict against XGBoost
`inplace_predict`, LightGBM `predict`, treelite GTIL, onnxruntime and (LightGBM) lleaves, at
batch sizes 1 to 1024, on synthetic card-payment models; plus a sweep of compile options, the
fixed cost of each call path, and the ratios the engine-benchmark issue sets as targets.
Writes bench/results/engine.{md,json,png}. Run: .venv/bin/python bench/engine.py [--quick]
"""

from __future__ import annotations

import os

# Every engine must run on one thread, and OpenMP reads this once, when it is first loaded.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import engine_data as data_set  # noqa: E402
import engine_report  # noqa: E402
import engine_timing as timing  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import provenance  # noqa: E402
import report  # noqa: E402
from engine_adapters import ForestGate, check_outputs, engines_for, native_for  # noqa: E402

from forestgate.engine.abi import load_library  # noqa: E402
from forestgate.engine.model import CompiledModel  # noqa: E402

HERE = Path(__file__).resolve().parent
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
VARIANT_BATCHES = (1, 16, 64, 256, 1024)
F32 = npt.NDArray[np.float32]
PACKAGES = (
    "numpy",
    "xgboost-cpu",
    "lightgbm",
    "scikit-learn",
    "treelite",
    "tl2cgen",
    "onnxruntime",
    "onnxmltools",
    "skl2onnx",
    "onnx",
    "lleaves",
    "llvmlite",
    "matplotlib",
)
# Only what this benchmark runs counts for the dirty flag: others commit to the same tree.
BENCHMARKED = ("compiler", "engine", "forestgate", "bench/engine.py", "bench/engine_*.py")


@dataclass(frozen=True)
class Plan:
    """What one run measures: the models, the batch sizes and the timing budget."""

    names: list[str]
    batches: tuple[int, ...]
    variant_batches: tuple[int, ...]
    budget: timing.Budget
    quick: bool

    @classmethod
    def of(cls, args: argparse.Namespace) -> Plan:
        if args.quick:
            names = ["xgb_small", "lgb_small"]
            batches, variant_batches = (1, 16, 256), (1, 256)
            budget = timing.Budget(rounds=1, slice_s=0.03, warmup_s=0.01)
        else:
            names = [*data_set.SPECS]
            batches, variant_batches = BATCHES, VARIANT_BATCHES
            budget = timing.Budget(rounds=5, slice_s=0.12, warmup_s=0.03)
        if args.models:
            names = [n for n in names if n in args.models.split(",")]
        return cls(names, batches, variant_batches, budget, args.quick)


def call_path_breakdown(bundle_dir: Path, pool: F32, rounds: int, block: int) -> dict[str, Any]:
    """Fixed cost of one batch-1 call, split into its parts (tight loops, distinct rows)."""
    import tl2cgen

    model = CompiledModel.open(bundle_dir)
    library = load_library(bundle_dir / model.manifest.library.file)
    fn = library.predict
    trivial = library.handle.forestgate_abi_version
    out = np.empty(1, dtype=np.float32)
    out_ptr = out.ctypes.data
    # The same two critical sections CompiledModel.predict runs around the native call.
    lock = threading.Lock()
    idle = threading.Condition(lock)
    state = [0]

    def lock_pair(x: F32) -> None:
        with lock:
            state[0] += 1
        with lock:
            state[0] -= 1
            if state[0] == 0:
                idle.notify_all()

    predictor = tl2cgen.Predictor(str(bundle_dir / model.manifest.library.file), nthread=1)
    items: list[tuple[str, Any]] = [
        ("empty Python call (loop baseline)", lambda x: None),
        ("bare ctypes call, trivial C function", lambda x: trivial()),
        ("CompiledModel.check_input only", model.check_input),
        ("lifecycle lock pair only (2 acquire/release + notify check)", lock_pair),
        ("np.empty output only", lambda x: np.empty(1, dtype=np.float32)),
        ("x.ctypes.data only (pointer of the input)", lambda x: x.ctypes.data),
        ("x.__array_interface__ pointer only", lambda x: x.__array_interface__["data"][0]),
        (
            "raw ctypes forestgate_predict_f32, preallocated out",
            lambda x: fn(x.ctypes.data, 1, -1, out_ptr),
        ),
        ("CompiledModel.predict(x, out=preallocated)", lambda x: model.predict(x, out)),
        ("CompiledModel.predict(x)", model.predict),
        ("tl2cgen.DMatrix(x) only", tl2cgen.DMatrix),
        ("tl2cgen Predictor.predict(DMatrix(x))", lambda x: predictor.predict(tl2cgen.DMatrix(x))),
    ]
    inputs = timing.batches_of(pool, 1)
    return timing.block_means(items, inputs, rounds=rounds, block=block)


def run_prepare(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    # OpenMP is unpinned for the compiler: users compile in an ordinary shell (and tl2cgen's
    # branch annotator refuses more threads than OMP_NUM_THREADS allows).
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    cmd = [
        sys.executable,
        str(HERE / "engine_workload.py"),
        "--cache",
        str(args.cache),
        "--models",
        ",".join(names),
        "--n-train",
        str(args.n_train),
        "--n-test",
        str(args.n_test),
    ]
    if args.quick:
        cmd.append("--quick")
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True)
    print(f"prepared in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    plan: dict[str, Any] = json.loads(Path(done.stdout.strip().splitlines()[-1]).read_text())
    return plan


def engine_table(
    name: str, model: dict[str, Any], pool: F32, bundle_dir: Path, plan: Plan
) -> dict[str, Any]:
    """Every engine of one model side by side: correctness, latency cells and linear fits."""
    print(f"{name}: engines", file=sys.stderr)
    engines = engines_for(name, model, bundle_dir)
    pools = {e.name: e.setup(pool) for e in engines}
    cells = timing.measure(
        [(e.name, e.call, pools[e.name]) for e in engines], plan.batches, plan.budget, name
    )
    fits = {e.name: timing.linear_fit(cells, e.name) for e in engines}
    return {
        "correctness": check_outputs(engines, pools, rows=2_000 if plan.quick else 5_000),
        "engines": [{"name": e.name, "kind": e.kind} for e in engines],
        "cells": [c.summary() for c in cells.values()],
        "fits": {e: {"a_us": a, "c_us": c} for e, (a, c) in fits.items()},
    }


def variant_sweep(name: str, model: dict[str, Any], pool: F32, plan: Plan) -> dict[str, Any]:
    """Every compile variant of one model, checked against the native engine, then timed."""
    print(f"{name}: compile variants", file=sys.stderr)
    native = native_for(data_set.SPECS[name], Path(model["model_path"]))
    variants = [
        ForestGate(Path(b["build"]["bundle_dir"]), b["variant"]["key"])
        for b in model["builds"]
        if "build" in b
    ]
    pools = {v.name: v.setup(pool) for v in [native, *variants]}
    cells = timing.measure(
        [(v.name, v.call, pools[v.name]) for v in variants], plan.variant_batches, plan.budget, name
    )
    return {
        "variant_correctness": check_outputs([native, *variants], pools, rows=2_000),
        "variant_cells": [c.summary() for c in cells.values()],
    }


def bench_model(name: str, model: dict[str, Any], pool: F32, plan: Plan) -> dict[str, Any]:
    """All measurements of one model: engines side by side, compile variants, call path."""
    builds = {b["variant"]["key"]: b for b in model["builds"]}
    auto_dir = Path(builds[model["auto"]]["build"]["bundle_dir"])
    out: dict[str, Any] = {"plan": model, "engines": [], "cells": [], "fits": {}}
    sweep_only = data_set.SPECS[name].sweep_only
    if not sweep_only:
        out |= engine_table(name, model, pool, auto_dir, plan)
    out |= variant_sweep(name, model, pool, plan)
    if not sweep_only:
        print(f"{name}: call path", file=sys.stderr)
        rounds, block = (5, 500) if plan.quick else (30, 2_000)
        out["call_path"] = call_path_breakdown(auto_dir, pool, rounds=rounds, block=block)
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    report.add_output_options(parser, "smoke run: small models, few batch sizes, short timings")
    parser.add_argument(
        "--cache",
        type=Path,
        default=HERE / ".cache",
        help="models and builds (default bench/.cache)",
    )
    parser.add_argument("--models", help="comma-separated subset of the models (default: all)")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="measure nothing: rewrite the report from a saved engine.json (after text changes)",
    )
    parser.add_argument("--n-train", type=int, default=100_000)
    parser.add_argument("--n-test", type=int, default=20_000)
    return parser.parse_args()


def render(saved_json: Path, out_dir: Path) -> None:
    saved = json.loads(saved_json.read_text())
    saved["rendered"] = {"commit": provenance.commit()[0]}
    engine_report.write(saved, out_dir)
    print(f"rewrote {out_dir}/engine.md and engine.png from {saved_json}", file=sys.stderr)


def main() -> None:
    args = parse_args()
    out_dir = report.output_dir(args)
    if args.render:
        render(args.render, out_dir)
        return
    plan = Plan.of(args)
    window = provenance.Window()
    prepared = run_prepare(args, plan.names)
    pool = np.ascontiguousarray(data_set.load_data(args.cache, args.n_train, args.n_test).x_test)
    results: dict[str, Any] = {
        "models": {
            name: bench_model(name, prepared["models"][name], pool, plan) for name in plan.names
        }
    }
    results["run"] = window.close(
        quick=plan.quick,
        batches=list(plan.batches),
        variant_batches=list(plan.variant_batches),
        budget=plan.budget.__dict__,
        n_train=args.n_train,
        n_test=args.n_test,
    )
    results["environment"] = provenance.environment(PACKAGES, BENCHMARKED)
    engine_report.write(results, out_dir)


if __name__ == "__main__":
    main()
