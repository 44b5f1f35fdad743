"""`forestgate compile` and `forestgate inspect`: the compiler's command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from forestgate.compiler import require_compiler
from forestgate.errors import CompileError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compile_ = commands.add_parser(
        "compile",
        help="compile a trained model into a verified native bundle",
        description=(
            "Compile an XGBoost (.json/.ubj), LightGBM (.txt) or scikit-learn (joblib) model into "
            "REPOSITORY/NAME/VERSION/ with a native library and manifest.json. The bundle is "
            "verified against the source framework and written only if it passes."
        ),
    )
    compile_.add_argument("model_file", metavar="MODEL_FILE", type=Path)
    compile_.add_argument("--name", required=True, help="model name (directory under REPOSITORY)")
    compile_.add_argument("--version", required=True, help="model version, e.g. 1 or 2026-11-28")
    compile_.add_argument("--repository", required=True, type=Path, help="model repository root")
    compile_.add_argument(
        "--features", type=Path, help="feature-schema file (JSON or YAML): names, types, ranges"
    )
    compile_.add_argument(
        "--sample", type=Path,
        help="representative rows (.npy float array [n, F] or .csv without header) added to the "
        "verification sample and used for --annotate",
    )  # fmt: skip
    tuning = compile_.add_argument_group(
        "compilation",
        "Defaults are chosen by model size from measurements on a 2-core Xeon: see "
        "bench/results/engine.md (made by bench/engine.py).",
    )
    tuning.add_argument(
        "--parallel-comp", type=int, default=0, metavar="N",
        help="C translation units; 0 = one per ~2,000 tree nodes, 2 to 32 (default 0)",
    )  # fmt: skip
    tuning.add_argument(
        "--quantize", choices=("auto", "on", "off"), default="auto",
        help="integer threshold indices; auto = on for float64-threshold models (LightGBM, "
        "scikit-learn) above 80,000 nodes, off otherwise (tl2cgen's table loses float32 "
        "precision: XGBoost builds fail verification) (default auto)",
    )  # fmt: skip
    tuning.add_argument(
        "--opt-level", choices=("auto", "O0", "O1", "O2", "O3", "Os"), default="auto",
        help="gcc optimisation; auto = Os at every model size, the fastest measured "
        "(default auto)",
    )  # fmt: skip
    tuning.add_argument(
        "--nthread", type=int, default=0, help="parallel gcc processes; 0 = all cores (default 0)"
    )
    tuning.add_argument("--toolchain", default="gcc", help="C compiler (default gcc)")
    tuning.add_argument(
        "--annotate", action="store_true", help="annotate branch frequencies from --sample rows"
    )
    checks = compile_.add_argument_group("verification")
    checks.add_argument(
        "--atol", type=float, default=1e-5, help="absolute tolerance (default 1e-5)"
    )
    checks.add_argument(
        "--rtol", type=float, default=1e-5, help="relative tolerance (default 1e-5)"
    )
    compile_.add_argument(
        "--overwrite", action="store_true", help="replace an existing bundle of this version"
    )
    compile_.add_argument("--json", action="store_true", help="print the manifest as JSON")
    compile_.set_defaults(run=run_compile)

    inspect = commands.add_parser(
        "inspect",
        help="print a bundle's manifest and check that it is sound",
        description=(
            "Print the manifest of BUNDLE_DIR, then check it: manifest schema, library hash, "
            "ABI and feature count, and re-scoring of the self-check rows stored at compile "
            "time. Exits non-zero when any check fails."
        ),
    )
    inspect.add_argument("bundle_dir", metavar="BUNDLE_DIR", type=Path)
    inspect.add_argument("--json", action="store_true", help="print the manifest as JSON")
    inspect.set_defaults(run=run_inspect)


def _read_sample(path: Path) -> npt.NDArray[np.float32]:
    try:
        if path.suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            data = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except (OSError, ValueError) as exc:
        raise CompileError(f"{path}: cannot read sample rows ({exc})") from None
    if data.ndim != 2 or not np.issubdtype(data.dtype, np.number):
        raise CompileError(f"{path}: sample must be a 2-D numeric array, got {data.shape}")
    return np.ascontiguousarray(data, dtype=np.float32)


def run_compile(args: argparse.Namespace) -> int:
    require_compiler("forestgate compile")
    from forestgate.compiler.codegen import CompileOptions
    from forestgate.compiler.pipeline import compile_model

    options = CompileOptions(
        parallel_comp=args.parallel_comp, quantize=args.quantize, opt_level=args.opt_level,
        nthread=args.nthread, toolchain=args.toolchain, annotate=args.annotate,
    )  # fmt: skip
    if args.annotate and args.sample is None:
        raise CompileError("--annotate needs --sample rows to count branches on")
    sample = _read_sample(args.sample) if args.sample is not None else None
    result = compile_model(
        args.model_file, name=args.name, version=args.version, repository=args.repository,
        features=args.features, options=options, sample=sample, atol=args.atol, rtol=args.rtol,
        overwrite=args.overwrite,
    )  # fmt: skip
    if args.json:
        print(result.manifest.to_json(), end="")
    else:
        _print_summary(json.loads(result.manifest.to_json()))
        print(f"bundle: {result.bundle_dir}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from forestgate.engine.model import CompiledModel

    model = CompiledModel.open(args.bundle_dir)
    rows = model.self_check()
    manifest = json.loads(model.manifest.to_json())
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        _print_summary(manifest)
    print(
        f"self-check: ok (hash, ABI, {model.num_features} features, {rows} stored rows re-scored)"
    )
    return 0


def _print_summary(m: dict[str, Any]) -> None:
    src, lib, comp, stats, ver = (
        m["source"], m["library"], m["compiler"], m["model_stats"], m["verification"]
    )  # fmt: skip
    names = [f["name"] for f in m["features"]]
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    resolved = comp["resolved"]
    print(f"model:        {m['name']} version {m['version']} ({m['task']})")
    print(f"source:       {src['framework']} {src['framework_version']} {src['model_type']}"
          f" objective={src['objective']}")  # fmt: skip
    print(f"features:     {shown}")
    print(
        f"output:       {m['output']['datatype']} {m['output']['shape']}: {m['output']['meaning']}"
    )
    print(f"trees:        {stats['num_trees']} trees, {stats['num_nodes']} nodes, "
          f"max depth {stats['max_depth']}")  # fmt: skip
    size_mb = lib["size_bytes"] / 1e6
    print(f"library:      {lib['file']} ({size_mb:.2f} MB, sha256 {lib['sha256'][:16]}...)")
    print(f"compiled:     treelite {comp['treelite']}, tl2cgen {comp['tl2cgen']}, "
          f"-{resolved['opt_level']}, parallel_comp={resolved['parallel_comp']}, "
          f"quantize={resolved['quantize']}, {comp['compile_seconds']:.1f} s")  # fmt: skip
    for label, text in _model_card_lines(m):
        print(f"{label + ':':<14}{text}")
    print(f"verification: {'passed' if ver['passed'] else 'FAILED'} on {ver['rows']} rows, "
          f"max |diff| {ver['max_abs_diff']:.3g} (atol {ver['atol']:g}, rtol {ver['rtol']:g}; "
          f"NaN {'checked' if ver['nan_checked'] else 'not accepted by source'}, "
          f"inf {ver['inf_checked']})")  # fmt: skip


def _model_card_lines(m: dict[str, Any]) -> list[tuple[str, str]]:
    """Calibration, reference distributions and training metrics, one line each."""
    from forestgate.engine.calibration import Calibration

    calibration, reference, metrics = (
        m.get("calibration"), m.get("reference"), m.get("training_metrics")
    )  # fmt: skip
    lines = [("calibration", "none")]
    if calibration is not None:
        lines[0] = ("calibration", Calibration.from_dict(calibration, "").describe())
    lines.append(("reference", "none"))
    if reference is not None:
        score = reference["score"]
        summary = "none finite"
        if score["quantiles"] is not None:
            last = reference["quantile_levels"] - 1
            summary = ", ".join(
                f"p{pct} {score['quantiles'][round(pct / 100 * last)]:.4g}"
                for pct in (0, 10, 50, 90, 100)
            )
        lines[1] = (
            "reference",
            f"{len(reference['features'])} features, {score['count']} rows; "
            f"score quantiles {summary}",
        )
    shown = [
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={json.dumps(value)}"
        for key, value in (metrics or {}).items()
    ]
    lines.append(("metrics", ", ".join(shown) or "none"))
    return lines
