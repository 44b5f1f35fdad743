"""`forestgate train` end to end, as a user runs it: the installed command generates a small data
set into an empty directory, trains, calibrates, evaluates, compiles and reports; the bundles are
then served by a real server and scored with tritonclient. Bad input leaves the repository as it
was."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forestgate.engine.manifest import read_manifest
from forestgate.payments.features import APPROVAL_FEATURES, RETRY_FEATURES
from tests.server.conftest import LiveServer, _serve
from tests.trained import SEED, Trained, _train

PNG = b"\x89PNG\r\n\x1a\n"


def test_generates_into_an_empty_directory_then_compiles_both_models(trained: Trained) -> None:
    assert (trained.data / "attempts.parquet").is_file()
    assert "generating the small preset" in trained.stderr
    for name, features in (("approval", APPROVAL_FEATURES), ("retry", RETRY_FEATURES)):
        manifest = read_manifest(trained.repository / name / "1")
        assert manifest.feature_names == list(features)
        assert manifest.task == "binary"
        assert manifest.calibration is not None
        assert manifest.calibration.method in ("isotonic", "platt")
        assert manifest.reference is not None
        assert manifest.training_metrics is not None
        assert manifest.training_metrics["run"] == "first"
        assert manifest.training_metrics["framework"] in ("xgboost", "lightgbm")
        assert f"{name}: {trained.repository / name / '1'}" in trained.stdout
    # The staging directory is gone: only the two models are in the repository.
    assert sorted(p.name for p in trained.repository.iterdir()) == ["approval", "retry"]


def test_report_has_every_section_and_its_plots(trained: Trained) -> None:
    run = trained.report / "first"
    text = (run / "report.md").read_text()
    for heading in (
        "## Approval model", "### Break-even threshold", "## Retry model",
        "## Policy view on held-out time", "## Bundles",
    ):  # fmt: skip
        assert heading in text
    for segment in ("domestic", "cross-border", "CIT", "MIT"):
        assert f"| {segment} | raw |" in text and f"| {segment} | calibrated |" in text
    for plot in ("roc_pr.png", "reliability_approval.png", "reliability_retry.png", "policy.png"):
        assert f"({plot})" in text
        blob = (run / plot).read_bytes()
        assert blob.startswith(PNG) and len(blob) > 5_000
    metrics = json.loads((run / "metrics.json").read_text())
    commit = metrics["provenance"]["commit"]
    assert commit and f"commit `{commit}`" in text
    assert metrics["guardrail_violations"] == 0
    assert "**0 violated a rule**" in text
    policies = {r["policy"]: r for r in metrics["routing"]}
    assert set(policies) == {"logging policy", "model", "oracle"}
    # The oracle maximises expected net value under the truth: nobody beats it, its regret is 0.
    assert policies["oracle"]["regret_usd_per_1000"] == pytest.approx(0.0, abs=1e-6)
    for row in policies.values():
        assert row["net_usd_per_1000"] <= policies["oracle"]["net_usd_per_1000"] + 1e-6
        assert f"| {row['policy']} | {row['payments']:,} |" in text
    fams = {(r["policy"], r["family"]) for r in metrics["retries"]}
    assert ("model", "all") in fams and ("fixed 1 d", "all") in fams


def test_calibration_improves_or_keeps_the_test_brier(trained: Trained) -> None:
    metrics = json.loads((trained.report / "first" / "metrics.json").read_text())
    test = metrics["models"]["approval"]["test"]["all"]
    # Isotonic/Platt are fitted on validation, so on test they can lose a little, never much.
    assert test["calibrated"]["brier"] <= test["raw"]["brier"] * 1.02
    assert test["calibrated"]["roc_auc"] > 0.7


@pytest.fixture(scope="module")
def served(trained: Trained) -> Iterator[LiveServer]:
    yield from _serve(trained.repository)


def test_served_probabilities_reproduce_the_reported_test_auc(
    trained: Trained, served: LiveServer
) -> None:
    """The test-period rows scored by the live server (calibrated `probability` output) give the
    ROC-AUC the report wrote, so the bundle is the model the report describes."""
    import tritonclient.grpc as triton
    from sklearn.metrics import roc_auc_score

    from forestgate.training.trainer import features, train

    manifest = read_manifest(trained.repository / "approval" / "1")
    split = manifest.training_metrics["split"]  # type: ignore[index]
    tables = features.extract(trained.data)
    table = tables.approval
    day = table.column("day").to_numpy()
    test = table.filter(pa.array(day >= split["test_from_day"]))
    columns = [test.column(c).to_numpy(zero_copy_only=False) for c in APPROVAL_FEATURES]
    x = np.column_stack(columns).astype(np.float32)
    y = test.column("approved").to_numpy(zero_copy_only=False).astype(bool)
    client = triton.InferenceServerClient(served.address)
    try:
        probs = []
        for chunk in np.array_split(x, -(-len(x) // 256)):  # the server's per-request row cap
            tensor = triton.InferInput("input__0", list(chunk.shape), "FP32")
            tensor.set_data_from_numpy(chunk)
            wanted = [triton.InferRequestedOutput("probability")]
            out = client.infer("approval", [tensor], outputs=wanted)
            probs.append(out.as_numpy("probability").ravel())
    finally:
        client.close()
    p = np.concatenate(probs)
    reported = manifest.training_metrics["test"]["calibrated"]["roc_auc"]  # type: ignore[index]
    assert roc_auc_score(y, p) == pytest.approx(reported, abs=2e-4)
    assert train.TimeSplit.of(split["days"]).test_from == split["test_from_day"]
    assert manifest.calibration is not None
    assert np.all((p >= 0) & (p <= 1)) and manifest.calibration.method in ("isotonic", "platt")


def test_runs_are_logged_to_mlflow_when_it_is_installed(trained: Trained) -> None:
    mlflow = pytest.importorskip("mlflow")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=(trained.report / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("forestgate-train")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in runs] == ["first"]
    data = runs[0].data
    assert data.params["config"] == "demo"
    assert data.params["approval.framework"] in ("xgboost", "lightgbm")
    metrics = json.loads((trained.report / "first" / "metrics.json").read_text())
    auc = metrics["models"]["approval"]["test"]["all"]["calibrated"]["roc_auc"]
    assert data.metrics["approval.test.calibrated.roc_auc"] == pytest.approx(auc)
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "report")}
    assert "report/report.md" in artifacts


def test_a_second_run_without_mlflow_adds_the_next_version(
    trained: Trained, tmp_path: Path
) -> None:
    repository = tmp_path / "models"
    shutil.copytree(trained.repository, repository)
    done = _train(
        "--data", str(trained.data), "--repository", str(repository),
        "--report", str(tmp_path / "reports"), "--config", "demo", "--seed", SEED,
        "--run", "second", env=_without_mlflow(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in ("approval", "retry"):
        assert sorted(p.name for p in (repository / name).iterdir()) == ["1", "2"]
        assert read_manifest(repository / name / "2").training_metrics["run"] == "second"  # type: ignore[index]
    assert (tmp_path / "reports" / "second" / "report.md").is_file()
    assert not (tmp_path / "reports" / "mlruns").exists()


def _without_mlflow(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import mlflow` fails, as on a machine without it."""
    shim = tmp_path / "no-mlflow"
    shim.mkdir()
    (shim / "mlflow.py").write_text("raise ImportError('mlflow is not installed')\n")
    return {**os.environ, "PYTHONPATH": str(shim)}


def _snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_a_retry_label_with_one_class_writes_no_model(trained: Trained, tmp_path: Path) -> None:
    """The approval model trains, then the retry label turns out to have one class: the error
    names it and neither model reaches the repository."""
    data = tmp_path / "data"
    shutil.copytree(trained.data, data)
    attempts = pq.read_table(data / "attempts.parquet")
    retry = np.asarray(attempts.column("decided_by").to_pylist(), dtype=object) == "randomized-v1"
    approved = attempts.column("approved").to_numpy(zero_copy_only=False) & ~retry
    index = attempts.column_names.index("approved")
    attempts = attempts.set_column(index, "approved", pa.array(approved))
    pq.write_table(attempts, data / "attempts.parquet")
    repository = tmp_path / "models"
    shutil.copytree(trained.repository, repository)
    before = _snapshot(repository)
    done = _train(
        "--data", str(data), "--repository", str(repository), "--report", str(tmp_path / "r"),
        "--config", "demo", "--run", "bad",
    )  # fmt: skip
    assert done.returncode == 2
    assert "retry: label 'approved' has one class (False)" in done.stderr
    assert _snapshot(repository) == before


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("drop_file", "attempts.parquet"),
        ("not_parquet", "attempts.parquet"),
        ("drop_column", "route_propensity"),
    ],
)
def test_bad_data_is_named_before_any_work(
    trained: Trained, tmp_path: Path, damage: str, expected: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(trained.data, data)
    path = data / "attempts.parquet"
    if damage == "drop_file":
        path.unlink()
    elif damage == "not_parquet":
        path.write_text("attempt_id,approved\n1,true\n")
    else:
        table = pq.read_table(path)
        pq.write_table(table.drop_columns([expected]), path)
    repository = tmp_path / "models"
    done = _train(
        "--data", str(data), "--repository", str(repository), "--report", str(tmp_path / "r"),
        "--config", "demo", env=_without_mlflow(tmp_path),
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("forestgate train: error:")
    assert expected in lines[0]
    assert _snapshot(repository) == []


def test_a_log_too_short_to_split_in_time_is_named(trained: Trained, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(trained.data, data)
    attempts = pq.read_table(data / "attempts.parquet")
    day = attempts.column("ts_utc").cast(pa.date32()).to_numpy(zero_copy_only=False)
    attempts = attempts.filter(pa.array(day < day.min() + np.timedelta64(3, "D")))
    pq.write_table(attempts, data / "attempts.parquet")
    done = _train(
        "--data", str(data), "--repository", str(tmp_path / "models"),
        "--report", str(tmp_path / "r"), "--config", "demo",
    )  # fmt: skip
    assert done.returncode == 2
    assert "the attempts span 3 day(s)" in done.stderr
    assert _snapshot(tmp_path / "models") == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--config", "huge"], "config: expected one of demo, full"),
        (["--preset", "tiny"], "preset: expected one of"),
        (["--seed", "-1"], "seed: expected a non-negative integer"),
        (["--run", "../x"], "run: expected a plain directory name"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, args: list[str], expected: str) -> None:
    done = _train(
        "--data", str(tmp_path / "d"), "--repository", str(tmp_path / "m"),
        "--report", str(tmp_path / "r"), *args,
    )  # fmt: skip
    assert done.returncode == 2
    assert expected in done.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "m").exists()


def test_an_unwritable_repository_is_named_before_any_work(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the repository's parent should be\n")
    done = _train(
        "--data", str(tmp_path / "d"), "--repository", str(blocked / "models"),
        "--report", str(tmp_path / "r"), "--config", "demo",
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"repository: {blocked / 'models'} is not writable" in lines[0]
    assert not (tmp_path / "d").exists()
