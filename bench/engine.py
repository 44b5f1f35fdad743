"""Engine benchmark: ForestGate's compiled library against the other tree-ensemble engines.

Single-threaded per-call and per-row latency of CompiledModel.predict against XGBoost
`inplace_predict`, LightGBM `predict`, treelite GTIL, onnxruntime and (LightGBM) lleaves, at
batch sizes 1 to 1024, on synthetic card-payment models; plus a sweep of compile options, the
fixed cost of each call path, and the ratios the engine-benchmark issue sets as targets.
Writes bench/results/engine.{md,json,png}. Run: .venv/bin/python bench/engine.py [--quick]
"""

import os

# Every engine must run on one thread, and OpenMP reads this once, when it is first loaded.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import engine_report as report  # noqa: E402
import engine_timing as timing  # noqa: E402
import engine_workload as workload  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from forestgate.engine.abi import load_library  # noqa: E402
from forestgate.engine.manifest import read_manifest  # noqa: E402
from forestgate.engine.model import CompiledModel  # noqa: E402

HERE = Path(__file__).resolve().parent
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
VARIANT_BATCHES = (1, 16, 64, 256, 1024)
F32 = npt.NDArray[np.float32]


class Engine:
    """One engine or call path: `setup` loads it, `call` is exactly what is timed, and
    `predict` returns positive-class probabilities for the correctness check."""

    name = "engine"
    kind = "other"  # forestgate | call path | native | other

    def setup(self, pool: F32) -> npt.NDArray[Any]:
        """Load the engine; returns the input pool in the form `call` takes."""
        raise NotImplementedError

    def call(self, x: npt.NDArray[Any]) -> object:
        raise NotImplementedError

    def predict(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        return np.asarray(self.call(x), dtype=np.float64).reshape(x.shape[0])


class ForestGate(Engine):
    """The product: CompiledModel.predict on a bundle from forestgate's compile pipeline."""

    kind = "forestgate"

    def __init__(self, bundle_dir: Path, name: str = "forestgate") -> None:
        self.bundle_dir = bundle_dir
        self.name = name

    def setup(self, pool: F32) -> F32:
        self.model = CompiledModel.open(self.bundle_dir)
        self.model.self_check()
        self.call = self.model.predict  # type: ignore[method-assign]
        return pool


class RawCtypes(Engine):
    """The same entry point called straight through ctypes, preallocated output, no checks."""

    kind = "call path"
    name = "raw ctypes (same .so)"

    def __init__(self, bundle_dir: Path) -> None:
        self.bundle_dir = bundle_dir

    def setup(self, pool: F32) -> F32:
        manifest = read_manifest(self.bundle_dir)
        fn = load_library(self.bundle_dir / manifest.library.file).predict
        self.out = np.empty(max(BATCHES), dtype=np.float32)
        out_ptr = self.out.ctypes.data

        def call(x: F32) -> int:
            return fn(x.ctypes.data, x.shape[0], -1, out_ptr)  # type: ignore[no-any-return]

        self.call = call  # type: ignore[method-assign]
        return pool

    def predict(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        self.call(x)
        return self.out[: x.shape[0]].astype(np.float64)


class Tl2cgenPredictor(Engine):
    """tl2cgen's documented runtime on the same library: Predictor + DMatrix per call."""

    kind = "call path"
    name = "tl2cgen.Predictor (same .so)"

    def __init__(self, bundle_dir: Path) -> None:
        self.bundle_dir = bundle_dir

    def setup(self, pool: F32) -> F32:
        import tl2cgen

        manifest = json.loads((self.bundle_dir / "manifest.json").read_text())
        so = self.bundle_dir / manifest["library"]["file"]
        predictor = tl2cgen.Predictor(str(so), nthread=1)
        dmatrix = tl2cgen.DMatrix

        def call(x: F32) -> npt.NDArray[Any]:
            return predictor.predict(dmatrix(x))  # type: ignore[no-any-return]

        self.call = call  # type: ignore[method-assign]
        return pool


class XGBoostNative(Engine):
    kind = "native"
    name = "xgboost inplace_predict"

    def __init__(self, model_path: Path) -> None:
        self.model_path = model_path

    def setup(self, pool: F32) -> F32:
        import xgboost

        booster = xgboost.Booster(model_file=str(self.model_path))
        booster.set_param({"nthread": 1})
        self.call = booster.inplace_predict  # type: ignore[method-assign]
        return pool


class LightGBMNative(Engine):
    kind = "native"
    name = "lightgbm predict"

    def __init__(self, model_path: Path) -> None:
        self.model_path = model_path

    def setup(self, pool: F32) -> F32:
        import lightgbm

        booster = lightgbm.Booster(model_file=str(self.model_path))

        def call(x: F32) -> npt.NDArray[Any]:
            return booster.predict(x, num_threads=1)  # type: ignore[no-any-return]

        self.call = call  # type: ignore[method-assign]
        return pool


class Gtil(Engine):
    name = "treelite.gtil"

    def __init__(self, spec: workload.ModelSpec, model_path: Path) -> None:
        self.spec, self.model_path = spec, model_path

    def setup(self, pool: F32) -> F32:
        import treelite

        model = workload.load_treelite(self.spec, self.model_path)
        gtil_predict = treelite.gtil.predict

        def call(x: F32) -> npt.NDArray[Any]:
            return gtil_predict(model, x, nthread=1)  # type: ignore[no-any-return]

        self.call = call  # type: ignore[method-assign]
        return pool


class OnnxRuntime(Engine):
    name = "onnxruntime"

    def __init__(self, onnx_path: Path) -> None:
        self.onnx_path = onnx_path

    def setup(self, pool: F32) -> F32:
        import onnxruntime

        so = onnxruntime.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        sess = onnxruntime.InferenceSession(
            str(self.onnx_path), so, providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in sess.get_outputs()]
        outputs = ["probabilities" if "probabilities" in names else names[-1]]
        run = sess.run

        def call(x: F32) -> list[Any]:
            return run(outputs, {"input": x})  # type: ignore[no-any-return]

        self.call = call  # type: ignore[method-assign]
        return pool

    def predict(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        return np.asarray(self.call(x)[0], dtype=np.float64)[:, 1]  # type: ignore[index]


class LleavesPredict(Engine):
    """lleaves' public API, fp64 (its default), one thread."""

    name = "lleaves predict"

    def __init__(self, model_path: Path, cache: Path) -> None:
        self.model_path, self.cache = model_path, cache

    def setup(self, pool: F32) -> F32:
        import lleaves

        self.model = lleaves.Model(model_file=str(self.model_path))
        self.model.compile(cache=str(self.cache))
        model = self.model

        def call(x: F32) -> npt.NDArray[Any]:
            return model.predict(x, n_jobs=1)  # type: ignore[no-any-return]

        self.call = call  # type: ignore[method-assign]
        return pool


class LleavesRaw(LleavesPredict):
    """lleaves' compiled entry point called directly: float64 rows converted before timing
    and a preallocated output, its fastest call path (engines.md section 11)."""

    name = "lleaves raw entry"

    def setup(self, pool: F32) -> npt.NDArray[np.float64]:
        super().setup(pool)
        addr = self.model._execution_engine.get_function_address("forest_root")
        proto = ctypes.CFUNCTYPE(
            None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32
        )
        entry = proto(addr)
        self.out = np.zeros(max(BATCHES), dtype=np.float64)
        out_ptr = self.out.ctypes.data

        def call(x: npt.NDArray[np.float64]) -> None:
            entry(x.ctypes.data, out_ptr, 0, x.shape[0])

        self.call = call  # type: ignore[method-assign]
        return np.ascontiguousarray(pool, dtype=np.float64)

    def predict(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        self.call(x)
        return self.out[: x.shape[0]].copy()


def engines_for(name: str, model: dict[str, Any], bundle_dir: Path) -> list[Engine]:
    spec = workload.SPECS[name]
    path = Path(model["model_path"])
    native: Engine = XGBoostNative(path) if spec.framework == "xgboost" else LightGBMNative(path)
    out: list[Engine] = [
        ForestGate(bundle_dir, "forestgate (default options)"),
        RawCtypes(bundle_dir),
        Tl2cgenPredictor(bundle_dir),
        native,
        Gtil(spec, path),
        OnnxRuntime(Path(model["onnx"])),
    ]
    if spec.framework == "lightgbm":
        cache = Path(model["lleaves_cache"])
        out += [LleavesPredict(path, cache), LleavesRaw(path, cache)]
    return out


def check_outputs(
    engines: list[Engine], pools: dict[str, npt.NDArray[Any]], rows: int
) -> dict[str, Any]:
    """max |engine - native| on the first `rows` pool rows (test data, most rows NaN-bearing)."""

    def scores(e: Engine) -> npt.NDArray[np.float64]:
        x = pools[e.name][:rows]
        step = max(BATCHES)  # the raw call paths have a preallocated output of this size
        return np.concatenate([e.predict(x[i : i + step]) for i in range(0, rows, step)])

    want = scores(next(e for e in engines if e.kind == "native"))
    out = {}
    for e in engines:
        diff = np.abs(scores(e) - want)
        out[e.name] = {
            "max_abs_diff": float(diff.max()),
            "rows_over_1e-4": int((diff > 1e-4).sum()),
        }
    return out


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


def bench_model(
    name: str,
    model: dict[str, Any],
    pool: F32,
    *,
    batches: tuple[int, ...],
    variant_batches: tuple[int, ...],
    budget: timing.Budget,
    quick: bool,
) -> dict[str, Any]:
    """All measurements of one model: engines side by side, compile variants, call path."""
    spec = workload.SPECS[name]
    builds = {b["variant"]["key"]: b for b in model["builds"]}
    auto_dir = Path(builds[model["auto"]]["build"]["bundle_dir"])
    out: dict[str, Any] = {"plan": model, "engines": [], "cells": [], "fits": {}}
    path = Path(model["model_path"])
    native: Engine = XGBoostNative(path) if spec.framework == "xgboost" else LightGBMNative(path)
    pools = {native.name: native.setup(pool)}
    if not spec.sweep_only:
        print(f"{name}: engines", file=sys.stderr)
        engines = engines_for(name, model, auto_dir)
        pools = {e.name: e.setup(pool) for e in engines}
        out["correctness"] = check_outputs(engines, pools, rows=2_000 if quick else 5_000)
        cells = timing.measure(
            [(e.name, e.call, pools[e.name]) for e in engines], batches, budget, name
        )
        out["engines"] = [{"name": e.name, "kind": e.kind} for e in engines]
        out["cells"] = [c.summary() for c in cells.values()]
        fits = {e.name: timing.linear_fit(cells, e.name) for e in engines}
        out["fits"] = {e: {"a_us": a, "c_us": c} for e, (a, c) in fits.items()}
        native = next(e for e in engines if e.kind == "native")
    print(f"{name}: compile variants", file=sys.stderr)
    variants = [
        ForestGate(Path(b["build"]["bundle_dir"]), k) for k, b in builds.items() if "build" in b
    ]
    vpools = {v.name: v.setup(pool) for v in variants}
    out["variant_correctness"] = check_outputs([native, *variants], {**pools, **vpools}, rows=2_000)
    vcells = timing.measure(
        [(v.name, v.call, vpools[v.name]) for v in variants], variant_batches, budget, name
    )
    out["variant_cells"] = [c.summary() for c in vcells.values()]
    if not spec.sweep_only:
        print(f"{name}: call path", file=sys.stderr)
        rounds, block = (5, 500) if quick else (30, 2_000)
        out["call_path"] = call_path_breakdown(auto_dir, pool, rounds=rounds, block=block)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: small models, few batch sizes, short timings",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=HERE / ".cache",
        help="models and builds (default bench/.cache)",
    )
    parser.add_argument(
        "--out", type=Path, help="results folder (default bench/results; --quick: CACHE/quick)"
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
    args = parser.parse_args()
    started = time.time()
    out_dir = args.out or (args.cache / "quick" if args.quick else HERE / "results")
    if args.render:
        saved = json.loads(args.render.read_text())
        saved["rendered"] = {"commit": report.environment()["commit"]}
        report.write(saved, out_dir)
        print(f"rewrote {out_dir}/engine.md and engine.png from {args.render}", file=sys.stderr)
        return
    if args.quick:
        names = ["xgb_small", "lgb_small"]
        batches, variant_batches = (1, 16, 256), (1, 256)
        budget = timing.Budget(rounds=1, slice_s=0.03, warmup_s=0.01)
    else:
        names = [*workload.SPECS]
        batches, variant_batches = BATCHES, VARIANT_BATCHES
        budget = timing.Budget(rounds=5, slice_s=0.12, warmup_s=0.03)
    if args.models:
        names = [n for n in names if n in args.models.split(",")]
    load_start = os.getloadavg()
    plan = run_prepare(args, names)
    data = workload.load_data(args.cache, args.n_train, args.n_test)
    pool = np.ascontiguousarray(data.x_test)
    results: dict[str, Any] = {"models": {}}
    for name in names:
        results["models"][name] = bench_model(
            name,
            plan["models"][name],
            pool,
            batches=batches,
            variant_batches=variant_batches,
            budget=budget,
            quick=args.quick,
        )
    results["run"] = {
        "quick": args.quick,
        "batches": list(batches),
        "variant_batches": list(variant_batches),
        "budget": budget.__dict__,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "seconds": round(time.time() - started, 1),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
    }
    results["environment"] = report.environment()
    report.write(results, out_dir)
    seconds = time.time() - started
    print(f"wrote {out_dir}/engine.md, engine.json, engine.png in {seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
