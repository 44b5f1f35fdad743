"""Session fixtures every test package shares: the training rows, one model repository per run and
every model source of tests/sources.py, each trained and compiled at most once per run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sources import RECIPES, Case, Rows, compile_case, synthetic_rows


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
