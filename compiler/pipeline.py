"""The compile pipeline: load -> compile -> manifest -> verify, written atomically to a repository.

A bundle is built in a temporary directory beside its destination and renamed into place only
once it has verified, so a failure at any stage leaves nothing half-written behind.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from forestgate.compiler import codegen, verify
from forestgate.compiler.features import read_schema, reconcile
from forestgate.compiler.source import SourceModel, library_versions, load_source
from forestgate.engine.abi import ENTRY_POINT
from forestgate.engine.calibration import Calibration
from forestgate.engine.manifest import (
    MANIFEST_FILE,
    CompilerRecord,
    LibrarySpec,
    Manifest,
    OutputSpec,
    SelfCheck,
    SourceSpec,
    check_identifier,
    sha256_file,
)
from forestgate.engine.reference import Reference
from forestgate.errors import BundleError, CompileError

SELF_CHECK_ROWS = 8


@dataclass(frozen=True)
class CompileResult:
    bundle_dir: Path
    manifest: Manifest
    verification: verify.Verification


def compile_model(
    model: object,
    *,
    name: str,
    version: str,
    repository: Path,
    features: Path | None = None,
    options: codegen.CompileOptions | None = None,
    sample: npt.NDArray[np.float32] | None = None,
    atol: float = verify.DEFAULT_ATOL,
    rtol: float = verify.DEFAULT_RTOL,
    overwrite: bool = False,
    calibration: Calibration | None = None,
    reference: Reference | None = None,
    training_metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> CompileResult:
    """Compile `model` (a file path or framework object) into `repository/name/version/`.

    `sample` rows (float32 [n, F], e.g. held-out training data) are added to the verification
    sample and, with `options.annotate`, drive branch annotation. `calibration` (binary models
    only), `reference` (over the model's features, in order), `training_metrics` and `extra`
    (any JSON objects) are recorded in the manifest as they are.
    """
    options = options or codegen.CompileOptions()
    check_identifier(name, "model name")
    check_identifier(version, "model version")
    gcc = codegen.toolchain_version(options.toolchain)
    source = load_source(model)
    label = source.file or f"{source.framework} {source.model_type}"
    schema = read_schema(features) if features is not None else None
    feature_list = reconcile(
        num_features=source.treelite_model.num_feature,
        model_names=source.feature_names,
        schema=schema,
        schema_path=features,
        model_label=label,
    )
    card = _model_card(
        calibration=calibration, reference=reference, training_metrics=training_metrics,
        extra=extra, task=source.task, feature_names=[f.name for f in feature_list], label=label,
    )  # fmt: skip
    if sample is not None:
        sample = np.asarray(sample, dtype=np.float32)
        if sample.ndim != 2 or sample.shape[1] != len(feature_list):
            raise CompileError(
                f"sample: expected shape [n, {len(feature_list)}], got {list(sample.shape)}"
            )
    destination = repository / name / version
    parent = destination.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f".{version}.building-", dir=parent))
    except OSError as exc:
        raise CompileError(f"{parent}: cannot write the bundle here ({exc.strerror})") from None
    if destination.exists() and not overwrite:
        shutil.rmtree(workdir, ignore_errors=True)
        raise CompileError(f"{destination}: bundle already exists (pass --overwrite to replace it)")
    try:
        manifest, result = _build(
            source, workdir=workdir, name=name, version=version, features=feature_list,
            options=options, sample=sample, atol=atol, rtol=rtol, gcc=gcc, card=card,
        )  # fmt: skip
        _publish(workdir, destination)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return CompileResult(destination, manifest, result)


def _build(
    source: SourceModel,
    *,
    workdir: Path,
    name: str,
    version: str,
    features: list,  # type: ignore[type-arg]
    options: codegen.CompileOptions,
    sample: npt.NDArray[np.float32] | None,
    atol: float,
    rtol: float,
    gcc: str,
    card: dict[str, Any],
) -> tuple[Manifest, verify.Verification]:
    stats = codegen.model_stats(source.treelite_model)
    resolved = codegen.resolve_options(options, stats)
    bundle = workdir / "bundle"
    bundle.mkdir()
    # A fresh file name per build: dlopen caches by path, so a reloaded version must not reuse one.
    stamp = dt.datetime.now(dt.UTC)
    staging = bundle / "model.so"
    seconds = codegen.build_library(
        source.treelite_model, workdir=workdir, library_path=staging, resolved=resolved,
        stats=stats, annotation_rows=sample,
    )  # fmt: skip
    digest = sha256_file(staging)
    library_file = f"{name}-{version}-{digest[:12]}.so"
    library = bundle / library_file
    staging.rename(library)
    rows = verify.make_sample(source.treelite_model, extra_rows=sample)
    result = verify.verify_library(library, source, rows, atol=atol, rtol=rtol)
    # make_sample puts its all-NaN, zero, +-inf and far-out rows first: the bundle keeps them
    # with the library's own outputs so `forestgate inspect` and the server re-check them.
    check_rows = np.ascontiguousarray(rows[:SELF_CHECK_ROWS])
    check_out = verify.call_library(library, check_rows, source.output_column)
    manifest = Manifest(
        name=name,
        version=version,
        task=source.task,
        features=tuple(features),
        output=_output(source, width=int(check_out.shape[1])),
        library=LibrarySpec(
            file=library.name,
            sha256=digest,
            size_bytes=library.stat().st_size,
            entry=ENTRY_POINT,
            outputs_per_row=verify.library_outputs(library),
            output_column=source.output_column,
        ),
        source=_source(source),
        compiler=CompilerRecord(
            **library_versions(),
            toolchain=gcc,
            requested=codegen.options_dict(options),
            resolved=resolved,
            compile_seconds=round(seconds, 3),
        ),
        model_stats=stats,
        verification=result.record(SelfCheck.of(check_rows, check_out)),
        created_at=stamp.isoformat(timespec="seconds"),
        **card,
    )
    (bundle / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
    return manifest, result


def _output(source: SourceModel, *, width: int) -> OutputSpec:
    return OutputSpec(
        shape=(-1,) if width == 1 else (-1, width),
        meaning=_meaning(source),
        classes=None if source.classes is None else tuple(source.classes),
    )


def _source(source: SourceModel) -> SourceSpec:
    return SourceSpec(
        framework=source.framework,
        framework_version=source.framework_version,
        model_type=source.model_type,
        objective=source.objective,
        file=None if source.file is None else os.path.basename(source.file),
        file_sha256=None if source.file is None else sha256_file(Path(source.file)),
    )


def _model_card(
    *,
    calibration: Calibration | None,
    reference: Reference | None,
    training_metrics: dict[str, Any] | None,
    extra: dict[str, Any] | None,
    task: str,
    feature_names: list[str],
    label: str,
) -> dict[str, Any]:
    """The manifest's calibration, reference and training_metrics fields, checked before any
    compile work starts."""
    if calibration is not None:
        if not isinstance(calibration, Calibration):
            raise CompileError(
                f"calibration: expected a Calibration, got {type(calibration).__name__}"
            )
        if task != "binary":
            raise CompileError(
                f"calibration: {label} is a {task} model; a calibration map applies to binary "
                "models only"
            )
    if reference is not None:
        if not isinstance(reference, Reference):
            raise CompileError(f"reference: expected a Reference, got {type(reference).__name__}")
        if list(reference.feature_names) != feature_names:
            raise CompileError(
                f"reference: fitted on features {list(reference.feature_names)}, but {label} "
                f"takes {feature_names}"
            )
    for field_name, value in (("training_metrics", training_metrics), ("extra", extra)):
        if value is not None:
            _check_json(field_name, value)
    return {
        "calibration": calibration,
        "reference": reference,
        "training_metrics": training_metrics,
        "extra": extra or {},
    }


def _check_json(field_name: str, value: object) -> None:
    if not isinstance(value, dict):
        raise CompileError(f"{field_name}: expected a dict, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CompileError(f"{field_name}: not storable as JSON ({exc})") from None


def _meaning(source: SourceModel) -> str:
    if source.task == "binary":
        return "probability of the positive class"
    if source.task == "multiclass":
        return "probability of each class, in the order of output.classes"
    return f"regression prediction ({source.objective or 'unknown objective'})"


def _publish(workdir: Path, destination: Path) -> None:
    """Move the verified bundle into place; an old version being replaced is removed last."""
    bundle = workdir / "bundle"
    try:
        if destination.exists():
            retired = workdir / "retired"
            os.rename(destination, retired)
        os.rename(bundle, destination)
    except OSError as exc:
        raise BundleError(
            f"{destination}: cannot move the bundle into place ({exc.strerror})"
        ) from None
