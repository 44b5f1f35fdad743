"""Workload: everything bench/engine.py measures, prepared and cached before it measures.

Trains the models (engine_data), compiles every option variant (engine_builds), converts to
ONNX and JIT-compiles lleaves once, and writes the plan file bench/engine.py reads. Runs as its
own process: see `prepare`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import engine_builds
import numpy as np
import numpy.typing as npt
import treelite
from engine_data import NUM_FEATURES, SPECS, ModelSpec, load_data, train

from forestgate.compiler import codegen

ANNOTATION_ROWS = 20_000


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


def _nodes_visited_cached(model: treelite.Model, model_path: Path, x: npt.NDArray[Any]) -> float:
    facts_path = model_path.parent / "facts.json"
    if not facts_path.is_file():
        facts_path.write_text(json.dumps({"nodes_visited_per_row": nodes_visited(model, x)}))
    return float(json.loads(facts_path.read_text())["nodes_visited_per_row"])


def _builds(
    spec: ModelSpec,
    *,
    model_path: Path,
    model_key: str,
    variants: list[engine_builds.Variant],
    sample: npt.NDArray[np.float32],
    cache: Path,
) -> list[dict[str, Any]]:
    """Every variant built (or its refusal), as the plan records them."""
    builds = []
    for variant in variants:
        print(f"prepare: {spec.name} {variant.key}", file=sys.stderr, flush=True)
        got = engine_builds.build(
            spec,
            model_path=model_path,
            model_key=model_key,
            variant=variant,
            sample=sample,
            cache=cache,
        )
        entry = {"variant": asdict(variant) | {"key": variant.key, "label": variant.label}}
        entry |= {"error": got} if isinstance(got, str) else {"build": got.as_json()}
        builds.append(entry)
    return builds


def _other_engines(spec: ModelSpec, model_path: Path) -> dict[str, Any]:
    """The ONNX file and, for LightGBM, the lleaves cache (not for sweep-only models)."""
    if spec.sweep_only:
        return {}
    extra: dict[str, Any] = {"onnx": str(onnx_file(spec, model_path))}
    if spec.framework == "lightgbm":
        lleaves_path, lleaves_s = lleaves_cache(model_path)
        extra |= {"lleaves_cache": str(lleaves_path), "lleaves_compile_s": lleaves_s}
    return extra


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
        auto = engine_builds.auto_variant(stats)
        variants = engine_builds.variant_grid(spec, auto, stats, quick)
        plan["models"][name] = {
            "spec": asdict(spec) | {"shape": spec.shape},
            "model_path": str(model_path),
            "info": info,
            "stats": asdict(stats),
            "nodes_visited_per_row": _nodes_visited_cached(model, model_path, data.x_test[:2_000]),
            "auto": auto.key,
            "builds": _builds(
                spec,
                model_path=model_path,
                model_key=info["key"],
                variants=variants,
                sample=sample,
                cache=cache,
            ),
            **_other_engines(spec, model_path),
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
