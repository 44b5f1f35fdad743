"""Engine adapters: each engine or call path bench/engine.py times, behind one small interface.

`setup` loads the engine and returns the input pool in the form it takes, `call` is exactly what
is timed, and `predict` returns positive-class probabilities for the correctness check.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from engine_data import SPECS, ModelSpec
from engine_workload import load_treelite

from forestgate.engine.abi import load_library
from forestgate.engine.manifest import read_manifest
from forestgate.engine.model import CompiledModel

MAX_ROWS = 1024  # the largest batch bench/engine.py times: preallocated outputs hold this many
F32 = npt.NDArray[np.float32]


class Engine:
    """One engine or call path: `setup` loads it, `call` is exactly what is timed, and
    `predict` returns positive-class probabilities for the correctness check."""

    name = "engine"
    kind = "other"  # forestgate | call path | native | other

    def __init__(self, path: Path) -> None:
        self.path = path  # the bundle, model file or ONNX file the engine loads

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
        super().__init__(bundle_dir)
        self.name = name

    def setup(self, pool: F32) -> F32:
        self.model = CompiledModel.open(self.path)
        self.model.self_check()
        self.call = self.model.predict  # type: ignore[method-assign]
        return pool


class RawCtypes(Engine):
    """The same entry point called straight through ctypes, preallocated output, no checks."""

    kind = "call path"
    name = "raw ctypes (same .so)"

    def setup(self, pool: F32) -> F32:
        manifest = read_manifest(self.path)
        fn = load_library(self.path / manifest.library.file).predict
        self.out = np.empty(MAX_ROWS, dtype=np.float32)
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

    def setup(self, pool: F32) -> F32:
        import tl2cgen

        so = self.path / read_manifest(self.path).library.file
        predictor = tl2cgen.Predictor(str(so), nthread=1)
        dmatrix = tl2cgen.DMatrix

        def call(x: F32) -> npt.NDArray[Any]:
            return predictor.predict(dmatrix(x))  # type: ignore[no-any-return]

        self.call = call  # type: ignore[method-assign]
        return pool


class XGBoostNative(Engine):
    kind = "native"
    name = "xgboost inplace_predict"

    def setup(self, pool: F32) -> F32:
        import xgboost

        booster = xgboost.Booster(model_file=str(self.path))
        booster.set_param({"nthread": 1})
        self.call = booster.inplace_predict  # type: ignore[method-assign]
        return pool


class LightGBMNative(Engine):
    kind = "native"
    name = "lightgbm predict"

    def setup(self, pool: F32) -> F32:
        import lightgbm

        booster = lightgbm.Booster(model_file=str(self.path))

        def call(x: F32) -> npt.NDArray[Any]:
            return booster.predict(x, num_threads=1)  # type: ignore[no-any-return]

        self.call = call  # type: ignore[method-assign]
        return pool


class Gtil(Engine):
    name = "treelite.gtil"

    def __init__(self, spec: ModelSpec, model_path: Path) -> None:
        super().__init__(model_path)
        self.spec = spec

    def setup(self, pool: F32) -> F32:
        import treelite

        model = load_treelite(self.spec, self.path)
        gtil_predict = treelite.gtil.predict

        def call(x: F32) -> npt.NDArray[Any]:
            return gtil_predict(model, x, nthread=1)  # type: ignore[no-any-return]

        self.call = call  # type: ignore[method-assign]
        return pool


class OnnxRuntime(Engine):
    name = "onnxruntime"

    def setup(self, pool: F32) -> F32:
        import onnxruntime

        so = onnxruntime.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        sess = onnxruntime.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
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
        super().__init__(model_path)
        self.cache = cache

    def setup(self, pool: F32) -> F32:
        import lleaves

        self.model = lleaves.Model(model_file=str(self.path))
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
        self.out = np.zeros(MAX_ROWS, dtype=np.float64)
        out_ptr = self.out.ctypes.data

        def call(x: npt.NDArray[np.float64]) -> None:
            entry(x.ctypes.data, out_ptr, 0, x.shape[0])

        self.call = call  # type: ignore[method-assign]
        return np.ascontiguousarray(pool, dtype=np.float64)

    def predict(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        self.call(x)
        return self.out[: x.shape[0]].copy()


def native_for(spec: ModelSpec, model_path: Path) -> Engine:
    """The model's own framework: the reference every other engine is checked against."""
    return XGBoostNative(model_path) if spec.framework == "xgboost" else LightGBMNative(model_path)


def engines_for(name: str, model: dict[str, Any], bundle_dir: Path) -> list[Engine]:
    spec = SPECS[name]
    path = Path(model["model_path"])
    out: list[Engine] = [
        ForestGate(bundle_dir, "forestgate (default options)"),
        RawCtypes(bundle_dir),
        Tl2cgenPredictor(bundle_dir),
        native_for(spec, path),
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
        step = MAX_ROWS  # the raw call paths have a preallocated output of this size
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
