"""Publishing a training run: both bundles into the model repository, staged and placed
together, and the run's parameters, metrics and report to MLflow when it is installed."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forestgate.training.trainer import train

if TYPE_CHECKING:
    from forestgate.training.trainer.pipeline import ModelRun, RunResult

MODELS = {"approval": "approval", "retry": "retry"}  # model name in the repository per task
# The rows compile_model adds to its verification sample, and the rows behind the reference
# distributions written into each manifest.
VERIFY_ROWS = 2_000
REFERENCE_ROWS = 50_000
Log = Callable[[str], None]


def next_version(repository: Path, name: str) -> str:
    existing = [int(p.name) for p in (repository / name).glob("*") if p.name.isdigit()]
    return str(max(existing, default=0) + 1)


def training_metrics(result: RunResult, run: ModelRun) -> dict[str, Any]:
    return {
        "run": result.request.run,
        "config": result.request.config,
        "framework": run.selection.kept.framework,
        "selection": run.selection.reason,
        "calibration": {"method": run.choice.method, "brier_by_method": run.choice.brier_by_method},
        "rows": run.rows,
        "split": {"valid_from_day": result.split.valid_from,
                  "test_from_day": result.split.test_from, "days": result.split.days,
                  "first_day": result.first_day.isoformat()},
        "test": {"raw": run.test_raw.as_dict(), "calibrated": run.test_calibrated.as_dict()},
        "data": result.data_meta,
    }  # fmt: skip


def compile_bundles(result: RunResult, data: dict[str, train.Dataset], log: Log) -> None:
    from forestgate.compiler.pipeline import compile_model
    from forestgate.engine.reference import Reference
    from forestgate.training.trainer.reference_data import reference_data

    repository = result.request.repository
    repository.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".train-staging-", dir=repository))
    try:
        placed = []
        world = reference_data(result.request.data)
        for task, run in (("approval", result.approval), ("retry", result.retry)):
            name = MODELS[task]
            version = next_version(repository, name)
            ds = data[task]
            x_train, _, _ = ds.part("train")
            x_test = ds.x[ds.split.masks(ds.day)["test"]]
            rng = np.random.default_rng(result.request.seed)
            ref_rows = x_train[rng.permutation(len(x_train))[:REFERENCE_ROWS]]
            kept = run.selection.kept
            reference = Reference.fit(ref_rows, kept.predict(ref_rows), list(ds.features))
            log(f"compiling {name}/{version} ({kept.framework}, {kept.trees} trees)")
            compiled = compile_model(
                train.trim(kept), name=name, version=version, repository=staging,
                sample=x_test[:VERIFY_ROWS], calibration=run.choice.calibration,
                reference=reference, training_metrics=training_metrics(result, run),
                extra=_extra(task, world),
            )  # fmt: skip
            placed.append((compiled.bundle_dir, repository / name / version, run, version))
        for source, target, run, version in placed:
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
            run.bundle, run.version = target, version
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def log_mlflow(result: RunResult, log: Log) -> None:
    """Parameters, metrics and artifacts to MLflow when it is installed; a no-op otherwise."""
    try:
        import mlflow
    except ImportError:
        return
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        # A local store beside the reports (`mlflow ui --backend-store-uri reports/mlruns`).
        # MLflow 3 keeps the file store in maintenance mode behind this switch; a server or a
        # database store is one MLFLOW_TRACKING_URI away.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((result.request.report / "mlruns").resolve().as_uri())
    mlflow.set_experiment("forestgate-train")
    with mlflow.start_run(run_name=result.request.run):
        mlflow.log_params({"config": result.request.config, "data": str(result.request.data),
                           **{f"data.{k}": v for k, v in result.data_meta.items()}})  # fmt: skip
        for run in (result.approval, result.retry):
            mlflow.log_param(f"{run.task}.framework", run.selection.kept.framework)
            mlflow.log_param(f"{run.task}.calibration", run.choice.method)
            for stage, q in (("raw", run.test_raw), ("calibrated", run.test_calibrated)):
                for key, value in q.as_dict().items():
                    if isinstance(value, float) and np.isfinite(value):
                        mlflow.log_metric(f"{run.task}.test.{stage}.{key}", value)
        for o in result.routing:
            mlflow.log_metric(f"routing.{o.policy.replace(' ', '_')}.net_usd_per_1000",
                              o.net_usd_per_1000)  # fmt: skip
        if result.report_dir is not None:
            mlflow.log_artifacts(str(result.report_dir), artifact_path="report")
    log(f"logged to MLflow at {mlflow.get_tracking_uri()}")


def _extra(task: str, world: dict[str, Any]) -> dict[str, Any]:
    """What decisions need from a bundle besides the model: the reference data, and for the
    retry model the delays it was trained to score (the logging policy's grid)."""
    from forestgate.training.generator.policy import GRID_S

    extra: dict[str, Any] = {"reference_data": world}
    if task == "retry":
        extra["retry_delays_s"] = [int(d) for d in GRID_S]
    return extra
