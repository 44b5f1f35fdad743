"""One small synthetic data set per test session, generated once and shared (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from forestgate.training.generator.generate import Result, generate, validate

SEED = 20_251_128


@pytest.fixture(scope="session")
def small(tmp_path_factory: pytest.TempPathFactory) -> Result:
    out = tmp_path_factory.mktemp("generated-small")
    return generate(validate("small", SEED, out))


@pytest.fixture(scope="session")
def small_dir(small: Result) -> Path:
    return small.out
