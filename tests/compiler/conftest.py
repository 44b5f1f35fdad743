"""Compiler fixtures: every source of tests/sources.py as a parameter, the LightGBM model with a
-1e-35 split, and throw-away copies of a compiled bundle for the tests that damage one."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.sources import RECIPES, Case


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
