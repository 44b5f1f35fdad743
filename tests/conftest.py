"""Session fixtures every test package shares: the training rows, one model repository per run,
every model source of tests/sources.py (each trained and compiled at most once per run), the
LightGBM model with a -1e-35 split, a bundle with a calibration map and reference distributions,
and throw-away copies of compiled bundles for the tests that damage one."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from forestgate.compiler.calibration import from_sklearn
from forestgate.engine.reference import Reference
from tests.redisserver import redis_server
from tests.sources import RECIPES, Calibrated, Case, Rows, compile_case, synthetic_rows
from tests.trained import Trained, train_demo


@pytest.fixture(scope="session")
def rows() -> Rows:
    return synthetic_rows()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the trained source models are saved (.json, .ubj, .txt, .joblib)."""
    return tmp_path_factory.mktemp("sources")


@pytest.fixture(scope="session")
def session_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model repository of this run: <recipe id>/1 for every compiled source. Tests that
    modify a bundle work on a copy."""
    return tmp_path_factory.mktemp("repository")


@pytest.fixture(scope="session")
def compiled_case(rows: Rows, model_dir: Path, session_repository: Path) -> Callable[[str], Case]:
    """compiled_case(recipe_id): that source trained, compiled and opened, on first use only."""
    cases: dict[str, Case] = {}

    def get(recipe_id: str) -> Case:
        if recipe_id not in cases:
            cases[recipe_id] = compile_case(
                RECIPES[recipe_id], rows=rows, model_dir=model_dir, repository=session_repository
            )
        return cases[recipe_id]

    return get


@pytest.fixture(scope="session")
def reference_bundle(compiled_case: Callable[[str], Case]) -> Path:
    """A verified bundle to inspect: the XGBoost binary classifier read from its JSON file."""
    return compiled_case("xgboost-json").bundle_dir


@pytest.fixture(scope="session", params=sorted(RECIPES))
def case(request: pytest.FixtureRequest, compiled_case: Callable[[str], Case]) -> Case:
    """Each compiled source in turn (session-scoped, so Hypothesis tests may use it)."""
    return compiled_case(request.param)


@pytest.fixture(scope="session")
def zero_split_case(compiled_case: Callable[[str], Case]) -> Case:
    """The LightGBM model whose splits on column 2 include LightGBM's zero-bin edge -1e-35."""
    zero_split = compiled_case("lightgbm-zero-split")
    assert np.float64(np.float32(-1e-35)) in zero_split.thresholds[2], zero_split.thresholds[2]
    return zero_split


@pytest.fixture
def bundle_copy(tmp_path: Path, reference_bundle: Path) -> Path:
    """A private copy of the reference bundle at <tmp>/repository/<name>/<version>."""
    destination = tmp_path / "repository" / reference_bundle.parent.name / reference_bundle.name
    shutil.copytree(reference_bundle, destination)
    return destination


@pytest.fixture(scope="session")
def calibrated(
    compiled_case: Callable[[str], Case], rows: Rows, session_repository: Path
) -> Calibrated:
    from sklearn.isotonic import IsotonicRegression

    from forestgate.compiler.pipeline import compile_model

    case = compiled_case("xgboost-json")
    p = case.compiled.predict(rows.x).astype(np.float64)
    isotonic = IsotonicRegression(out_of_bounds="clip").fit(p, rows.binary)
    calibration = from_sklearn(isotonic)
    reference = Reference.fit(rows.x, p, case.trained.feature_names)
    metrics = {"auc": 0.8125, "rows": int(p.size), "split": {"train": 0.8, "test": 0.2}}
    result = compile_model(
        case.trained.model, name="calibrated", version="1", repository=session_repository,
        calibration=calibration, reference=reference, training_metrics=metrics,
    )  # fmt: skip
    return Calibrated(result.bundle_dir, isotonic, calibration, reference, metrics)


@pytest.fixture
def calibrated_copy(tmp_path: Path, calibrated: Calibrated) -> Path:
    """A private copy of the calibrated bundle, for the tests that damage its manifest."""
    destination = tmp_path / "repository" / "calibrated" / "1"
    shutil.copytree(calibrated.bundle_dir, destination)
    return destination


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """`forestgate train` run once (small preset, demo configuration): its data set, the
    approval/1 and retry/1 bundles and the report."""
    return train_demo(tmp_path_factory.mktemp("train"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One real redis-server per session (tests/redisserver.py); tests flush what they use."""
    with redis_server() as url:
        yield url
