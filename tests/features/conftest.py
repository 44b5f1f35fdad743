"""One small generated data set and its feature tables per test session (read-only)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from forestgate.training.generator.generate import generate, validate
from forestgate.training.trainer.features import FeatureTables, extract
from tests.training.conftest import SEED

# Candidates from day 60 on: half the log, so point-in-time cutoffs fall inside the candidates.
CANDIDATES_FROM = dt.datetime(2025, 10, 3, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("features-small")
    return generate(validate("small", SEED, out)).out


@pytest.fixture(scope="session")
def tables(data_dir: Path) -> FeatureTables:
    return extract(data_dir, candidates_from=CANDIDATES_FROM)
