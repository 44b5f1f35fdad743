"""Fixtures of the payments tests: the packaged rules, and a copy with the internal budget out of
the way so the scheme caps can be reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from forestgate.payments.guardrail import Rules
from tests.payments.factory import LOOSE_BUDGET, rules_with


@pytest.fixture(scope="session")
def rules() -> Rules:
    return Rules.load()


@pytest.fixture(scope="session")
def loose_rules(tmp_path_factory: pytest.TempPathFactory) -> Rules:
    """The packaged rules with an internal budget of 1000 retries in 400 days."""
    path: Path = tmp_path_factory.mktemp("loose")
    return rules_with(path, *LOOSE_BUDGET)
