"""Workload: the synthetic card-payment data, the trained models and their compiled bundles, cached.

Everything expensive (data, training, ONNX conversion, lleaves JIT, gcc) is cached under
bench/.cache/ by a key made of its parameters, so a rerun of bench/engine.py only measures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import treelite

from forestgate.compiler import codegen
from forestgate.compiler.pipeline import compile_model
from forestgate.engine.manifest import ModelStats
from forestgate.errors import CompileError

DATA_VERSION = 1
NUM_FEATURES = 64
# Cardinalities of the integer-coded categoricals, as in engines.md section 4.
CATEGORY_SIZES = (20, 50, 4, 6, 8, 24)
NAN_RATES = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40)
ANNOTATION_ROWS = 20_000


@dataclass(frozen=True)
class ModelSpec:
    """One benchmark model: framework, shape and training parameters."""

    name: str
    framework: str  # "xgboost" | "lightgbm"
    trees: int
    depth: int  # max depth; 0 = unlimited (LightGBM leaf-wise)
    leaves: int = 0  # LightGBM num_leaves
    learning_rate: float = 0.1
    # "medium" is what the issue calls realistic. "tiny" and "large" models only join the
    # compile-option sweep, to see whether the best options change with model size.
    size: str = "medium"

    @property
    def sweep_only(self) -> bool:
        return self.size in ("tiny", "large")

    @property
    def shape(self) -> str:
        if self.framework == "xgboost":
            return f"{self.trees} trees, depth {self.depth}"
        depth = f", max depth {self.depth}" if self.depth else ""
        return f"{self.trees} trees, {self.leaves} leaves{depth}"


SPECS = {
    spec.name: spec
    for spec in (
        ModelSpec("xgb_med", "xgboost", trees=300, depth=8, learning_rate=0.1),
        ModelSpec("lgb_med", "lightgbm", trees=300, depth=0, leaves=63, learning_rate=0.05),
        ModelSpec("xgb_small", "xgboost", trees=100, depth=6, learning_rate=0.05, size="small"),
        ModelSpec(
            "lgb_small",
            "lightgbm",
            trees=100,
            depth=6,
            leaves=63,
            learning_rate=0.05,
            size="small",
        ),
        ModelSpec(
            "lgb_big", "lightgbm", trees=1000, depth=0, leaves=63, learning_rate=0.05, size="large"
        ),
        ModelSpec("xgb_tiny", "xgboost", trees=20, depth=4, learning_rate=0.2, size="tiny"),
        ModelSpec(
            "lgb_tiny", "lightgbm", trees=20, depth=4, leaves=15, learning_rate=0.2, size="tiny"
        ),
    )
}


@dataclass(frozen=True)
class Variant:
    """One set of compile options; its key names the cached bundle."""

    opt_level: str
    parallel_comp: int
    quantize: bool
    annotate: bool = False

    @property
    def key(self) -> str:
        q = "q1" if self.quantize else "q0"
        a = "-ann" if self.annotate else ""
        return f"{self.opt_level}-pc{self.parallel_comp}-{q}{a}"

    @property
    def label(self) -> str:
        parts = [f"-{self.opt_level}", f"pc{self.parallel_comp}"]
        parts.append("quantize" if self.quantize else "float")
        if self.annotate:
            parts.append("annotated")
        return " ".join(parts)

    def options(self) -> codegen.CompileOptions:
        return codegen.CompileOptions(
            parallel_comp=self.parallel_comp,
            quantize="on" if self.quantize else "off",
            opt_level=self.opt_level,
            annotate=self.annotate,
        )


@dataclass
class Build:
    """A compiled, verified bundle and what it cost to make."""

    model: str
    variant: Variant
    bundle_dir: Path
    codegen_gcc_s: float  # tl2cgen code generation + gcc, from the manifest
    pipeline_s: float  # the whole compile_model call: load, build, verify, write
    so_bytes: int
    verify_rows: int
    verify_max_abs_diff: float
    resolved: dict[str, Any] = field(default_factory=dict)
    # 1-minute load average, highest of before and after the build (compile times on a shared
    # 2-core machine swing with it); None for builds recorded before it was kept.
    loadavg: float | None = None

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["variant"] = asdict(self.variant) | {"key": self.variant.key}
        d["bundle_dir"] = str(self.bundle_dir)
        return d


@dataclass
class Dataset:
    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int8]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int8]


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def make_data(n_train: int, n_test: int, seed: int = 20_241_128) -> Dataset:
    """Synthetic card payments: 64 float32 features, 8 of them NaN-bearing, non-linear label.

    50 continuous features (normal, log-normal money amounts, uniform, heavy-tailed), 8 features
    whose missingness is itself informative, and 6 integer-coded categoricals fed as numbers.
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    cols: list[npt.NDArray[np.float64]] = []
    cols += [rng.normal(size=n) for _ in range(15)]
    cols += [rng.lognormal(mean=3.0 + 0.2 * i, sigma=1.2, size=n) for i in range(10)]
    cols += [rng.uniform(0.0, 1.0, size=n) for _ in range(15)]
    cols += [rng.standard_t(df=2.5, size=n) for _ in range(10)]
    cols += [rng.gamma(shape=2.0, scale=1.0 + i, size=n) for i in range(8)]  # become NaN-bearing
    cols += [rng.integers(0, k, size=n).astype(np.float64) for k in CATEGORY_SIZES]
    x = np.stack(cols, axis=1)
    assert x.shape[1] == NUM_FEATURES
    z = x.copy()
    z[:, 15:25] = np.log(z[:, 15:25])
    effects = [rng.normal(0.0, 0.6, size=k) for k in CATEGORY_SIZES]
    logit = (
        -3.6
        + 0.8 * np.tanh(z[:, 0] * z[:, 1])
        + 0.6 * np.sin(2.0 * z[:, 2])
        + 0.5 * (z[:, 3] > 0.8) * (z[:, 4] < -0.2)
        + 0.35 * (z[:, 15] - 3.0)
        - 0.25 * np.abs(z[:, 16] - 3.2)
        + 0.7 * (z[:, 25] > 0.9) * (z[:, 17] > 4.0)
        + 0.5 * np.cos(6.0 * z[:, 26] * z[:, 27])
        + 0.3 * np.clip(z[:, 40], -4, 4)
        - 0.3 * np.clip(z[:, 41] * z[:, 5], -3, 3)
        + 0.2 * z[:, 6:15].sum(axis=1) / 3.0
        + 0.25 * np.sin(z[:, 28:40].sum(axis=1))
        + 0.15 * np.clip(z[:, 42:50], -3, 3).sum(axis=1)
        + 0.1 * np.log1p(z[:, 50:58]).sum(axis=1)
        - 0.08 * z[:, 50:58].mean(axis=1)
    )
    for j, eff in zip(range(58, 64), effects, strict=True):
        logit += eff[x[:, j].astype(np.int64)]
    logit += 0.5 * rng.normal(size=n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    # Informative missingness: positives lose a value more often than negatives.
    for j, rate in zip(range(50, 58), NAN_RATES, strict=True):
        p = rate * np.where(y == 1, 1.6, 0.95)
        x[rng.random(n) < p, j] = np.nan
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    return Dataset(x32[:n_train], y[:n_train], x32[n_train:], y[n_train:])


def load_data(cache: Path, n_train: int, n_test: int) -> Dataset:
    path = cache / f"data-v{DATA_VERSION}-{n_train}-{n_test}.npz"
    if path.is_file():
        with np.load(path) as z:
            return Dataset(z["x_train"], z["y_train"], z["x_test"], z["y_test"])
    data = make_data(n_train, n_test)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **asdict(data))
    tmp.rename(path)
    return data


def _auc(y: npt.NDArray[np.int8], p: npt.NDArray[np.float64]) -> float:
    order = np.argsort(p, kind="stable")
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def train(spec: ModelSpec, data: Dataset, cache: Path) -> tuple[Path, dict[str, Any]]:
    """Train (or reuse) a model; returns its file and facts: key, train seconds, test AUC."""
    key = f"{spec.name}-{_key(asdict(spec), DATA_VERSION, data.x_train.shape)}"
    folder = cache / "models" / key
    info_path = folder / "info.json"
    suffix = ".ubj" if spec.framework == "xgboost" else ".txt"
    model_path = folder / f"model{suffix}"
    if info_path.is_file() and model_path.is_file():
        return model_path, json.loads(info_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if spec.framework == "xgboost":
        import xgboost

        dtrain = xgboost.DMatrix(data.x_train, label=data.y_train, nthread=2)
        params = {
            "objective": "binary:logistic",
            "tree_method": "hist",
            "max_depth": spec.depth,
            "eta": spec.learning_rate,
            "nthread": 2,
            "seed": 1,
            "eval_metric": "auc",
        }
        booster = xgboost.train(params, dtrain, num_boost_round=spec.trees)
        seconds = time.perf_counter() - started
        booster.save_model(str(model_path))
        booster.set_param({"nthread": 1})
        p = booster.inplace_predict(data.x_test)
    else:
        import lightgbm

        params = {
            "objective": "binary",
            "num_leaves": spec.leaves,
            "max_depth": spec.depth or -1,
            "learning_rate": spec.learning_rate,
            "num_threads": 2,
            "seed": 1,
            "verbose": -1,
        }
        dtrain = lightgbm.Dataset(data.x_train, label=data.y_train)
        lgb_booster = lightgbm.train(params, dtrain, num_boost_round=spec.trees)
        seconds = time.perf_counter() - started
        lgb_booster.save_model(str(model_path))
        p = lgb_booster.predict(data.x_test, num_threads=1)
    info = {
        "key": key,
        "train_seconds": round(seconds, 1),
        "test_auc": round(_auc(data.y_test, np.asarray(p, dtype=np.float64)), 4),
        "positive_rate": round(float(data.y_train.mean()), 4),
    }
    info_path.write_text(json.dumps(info, indent=1))
    return model_path, info


def codegen_fingerprint() -> str:
    """What, besides the model and the options, decides a bundle's code: the shim and its
    block size."""
    shim = resources.files("forestgate.compiler").joinpath("shim.c").read_text("utf-8")
    return "codegen-" + _key(shim, codegen.BLOCK_ROWS)


def build(
    spec: ModelSpec,
    *,
    model_path: Path,
    model_key: str,
    variant: Variant,
    sample: npt.NDArray[np.float32],
    cache: Path,
) -> Build | str:
    """Compile (or reuse) one variant through the ForestGate pipeline, as a user would.

    Returns the build, or the pipeline's error message when it refuses the variant (a failed
    verification is a result worth reporting, and is cached like a success).
    """
    # Bundles are cached per code generator too: a changed shim or block size must rebuild them.
    repository = cache / "bundles" / codegen_fingerprint()
    bundle_dir = repository / model_key / variant.key
    record_path = repository / model_key / f"{variant.key}.build.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if "error" in record:
            return str(record["error"])
        if (bundle_dir / "manifest.json").is_file():
            return Build(
                model=spec.name,
                variant=variant,
                bundle_dir=bundle_dir,
                codegen_gcc_s=record["codegen_gcc_s"],
                pipeline_s=record["pipeline_s"],
                so_bytes=record["so_bytes"],
                verify_rows=record["verify_rows"],
                verify_max_abs_diff=record["verify_max_abs_diff"],
                resolved=record["resolved"],
                loadavg=record.get("loadavg"),
            )
    record_path.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        result = compile_model(
            model_path,
            name=model_key,
            version=variant.key,
            repository=repository,
            options=variant.options(),
            sample=sample,
            overwrite=True,
        )
    except CompileError as exc:
        message = f"{type(exc).__name__}: {exc}"
        record_path.write_text(json.dumps({"variant": variant.key, "error": message}))
        return message
    pipeline_s = time.perf_counter() - started
    manifest = result.manifest
    out = Build(
        model=spec.name,
        variant=variant,
        bundle_dir=bundle_dir,
        codegen_gcc_s=manifest.compiler.compile_seconds,
        pipeline_s=round(pipeline_s, 3),
        so_bytes=manifest.library.size_bytes,
        verify_rows=result.verification.rows,
        verify_max_abs_diff=result.verification.max_abs_diff,
        resolved=asdict(manifest.compiler.resolved),
        loadavg=round(max(load_before, os.getloadavg()[0]), 2),
    )
    record_path.write_text(json.dumps(out.as_json(), indent=1))
    return out


def auto_variant(stats: ModelStats) -> Variant:
    """The variant `forestgate compile` builds with no options: what users get by default."""
    r = codegen.resolve_options(codegen.CompileOptions(), stats)
    return Variant(r.opt_level, r.parallel_comp, r.quantize, r.annotate)


def variant_grid(spec: ModelSpec, auto: Variant, stats: ModelStats, quick: bool) -> list[Variant]:
    """The compile options swept for one model, the default first.

    Every opt level with and without threshold quantisation, branch annotation at -O1 and -Os
    (not for the sweep-only models), and, for the medium models, translation-unit counts.
    tl2cgen's quantisation table loses float32 precision (see engine.md), so for
    float32-threshold models one quantised variant documents that and no other is built.
    """
    pc = auto.parallel_comp
    exact_quantize = stats.threshold_type == "float64"
    if quick:
        grid = [auto, Variant("O3", pc, auto.quantize), Variant("O1", pc, auto.quantize)]
        return list({v.key: v for v in grid}.values())
    grid = [auto]
    for opt in ("O1", "O2", "O3", "Os"):
        grid.append(Variant(opt, pc, False))
        if exact_quantize:
            grid.append(Variant(opt, pc, True))
    if not exact_quantize:
        grid.append(Variant("O1", pc, True))
    if spec.size == "large":  # each build takes a while: opt levels and quantisation only
        grid = [v for v in grid if v.opt_level != "O2"]
    if not spec.sweep_only:
        for opt in ("O1", "Os"):
            grid.append(Variant(opt, pc, False, annotate=True))
    if spec.size == "medium":
        for tus in (8, 32, 64):  # fewer units only compile slower (2 took minutes at -Os)
            grid.append(Variant(auto.opt_level, tus, auto.quantize))
    return list({v.key: v for v in grid}.values())


def nodes_visited(model: treelite.Model, x: npt.NDArray[np.float32]) -> float:
    """Mean number of internal nodes a row passes through, summed over the trees."""
    leaves = treelite.gtil.predict_leaf(model, x, nthread=1).astype(np.int64)
    total = np.zeros(x.shape[0])
    for t in range(model.num_tree):
        tree = model.get_tree_accessor(t)
        left, right = tree.get_field("cleft"), tree.get_field("cright")
        depth = np.zeros(len(left), dtype=np.int64)
        for node in range(len(left)):  # children always come after their parent
            if left[node] >= 0:
                depth[left[node]] = depth[node] + 1
                depth[right[node]] = depth[node] + 1
        total += depth[leaves[:, t]]
    return float(total.mean())


def load_treelite(spec: ModelSpec, model_path: Path) -> treelite.Model:
    if spec.framework == "xgboost":
        return treelite.frontend.load_xgboost_model(str(model_path))
    return treelite.frontend.load_lightgbm_model(str(model_path))


def onnx_file(spec: ModelSpec, model_path: Path) -> Path:
    """Convert the model to ONNX (ai.onnx.ml TreeEnsembleClassifier) once, next to it."""
    path = model_path.with_suffix(".onnx")
    if path.is_file():
        return path
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("input", FloatTensorType([None, NUM_FEATURES]))]
    if spec.framework == "xgboost":
        import xgboost

        clf = xgboost.XGBClassifier()  # the converter wants the scikit-learn wrapper
        clf.load_model(str(model_path))
        onx = convert_xgboost(clf, initial_types=types)
    else:
        import lightgbm

        booster = lightgbm.Booster(model_file=str(model_path))
        onx = convert_lightgbm(booster, initial_types=types, zipmap=False)
    tmp = path.with_suffix(".onnx.tmp")
    tmp.write_bytes(onx.SerializeToString())
    tmp.rename(path)
    return path


def lleaves_cache(model_path: Path) -> tuple[Path, float | None]:
    """JIT-compile a LightGBM model with lleaves' defaults (fp64) once; returns cache, seconds."""
    import lleaves

    path = model_path.with_suffix(".lleaves.bin")
    seconds_path = model_path.with_suffix(".lleaves.json")
    if not path.is_file():
        started = time.perf_counter()
        lleaves.Model(model_file=str(model_path)).compile(cache=str(path))
        seconds_path.write_text(json.dumps({"seconds": time.perf_counter() - started}))
    seconds = json.loads(seconds_path.read_text())["seconds"] if seconds_path.is_file() else None
    return path, seconds


def prepare(cache: Path, names: list[str], quick: bool, n_train: int, n_test: int) -> Path:
    """Train, compile and convert everything the benchmark needs; returns the plan file.

    Runs in its own process (see engine.py): the benchmark process pins OpenMP to one thread,
    and `forestgate compile --annotate` passes all cores to tl2cgen's annotator, which refuses
    more threads than OpenMP allows.
    """
    data = load_data(cache, n_train, n_test)
    sample = np.ascontiguousarray(data.x_train[:ANNOTATION_ROWS])
    plan: dict[str, Any] = {"n_train": n_train, "n_test": n_test, "models": {}}
    for name in names:
        spec = SPECS[name]
        model_path, info = train(spec, data, cache)
        model = load_treelite(spec, model_path)
        stats = codegen.model_stats(model)
        facts_path = model_path.parent / "facts.json"
        if not facts_path.is_file():
            visited = nodes_visited(model, data.x_test[:2_000])
            facts_path.write_text(json.dumps({"nodes_visited_per_row": visited}))
        facts = json.loads(facts_path.read_text())
        auto = auto_variant(stats)
        builds: list[dict[str, Any]] = []
        for variant in variant_grid(spec, auto, stats, quick):
            print(f"prepare: {name} {variant.key}", file=sys.stderr, flush=True)
            got = build(
                spec,
                model_path=model_path,
                model_key=info["key"],
                variant=variant,
                sample=sample,
                cache=cache,
            )
            entry = {"variant": asdict(variant) | {"key": variant.key, "label": variant.label}}
            entry |= {"error": got} if isinstance(got, str) else {"build": got.as_json()}
            builds.append(entry)
        extra: dict[str, Any] = {}
        if not spec.sweep_only:
            extra["onnx"] = str(onnx_file(spec, model_path))
        if spec.framework == "lightgbm" and not spec.sweep_only:
            lleaves_path, lleaves_s = lleaves_cache(model_path)
            extra |= {"lleaves_cache": str(lleaves_path), "lleaves_compile_s": lleaves_s}
        plan["models"][name] = {
            "spec": asdict(spec) | {"shape": spec.shape},
            "model_path": str(model_path),
            "info": info,
            "stats": asdict(stats),
            "nodes_visited_per_row": facts["nodes_visited_per_row"],
            "auto": auto.key,
            "builds": builds,
            **extra,
        }
    plan_path = cache / ("plan-quick.json" if quick else "plan.json")
    plan_path.write_text(json.dumps(plan, indent=1))
    return plan_path


def main() -> None:
    parser = argparse.ArgumentParser(description="Prepare bench/engine.py's models and builds.")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--models", required=True, help="comma-separated names from SPECS")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-train", type=int, required=True)
    parser.add_argument("--n-test", type=int, required=True)
    args = parser.parse_args()
    names = args.models.split(",")
    print(prepare(args.cache, names, args.quick, args.n_train, args.n_test))


if __name__ == "__main__":
    main()
