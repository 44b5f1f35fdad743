"""LIVE: `forestgate simulate` against a real Scoring server, a few thousand held-out payments.

Needs the server side of protos/forestgate/v1/scoring.proto (Score with routing and retry
advice, ReportOutcome), which is not on this branch yet. The ``scoring_target`` fixture is the
one seam: it yields the HOST:PORT of a server serving models trained on the same generated
world, and skips, saying why, while none is available. When the server is merged, wire the
fixture to start it (a real ``grpc.aio`` server on port 0, as tests/server does) instead of
reading FORESTGATE_SCORING_TARGET.

What the test expects of the server: it answers every Score within the deadline, chooses among
the candidate routes, advises only guardrail-allowed reattempts (0 violations when the
simulator re-checks them), and its approval rate and net revenue are at least the incumbent's
on the same payments and draws.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from forestgate.clients.simulate.session import Outcome, Settings, simulate

PAYMENTS = 3_000


class Silent:
    def start(self, description: str, total: int) -> None:
        return None

    def advance(self, result: object) -> None:
        return None


@pytest.fixture(scope="module")
def scoring_target() -> Iterator[str]:
    """HOST:PORT of a Scoring server; skips until the server exists on this branch."""
    target = os.environ.get("FORESTGATE_SCORING_TARGET")
    if not target:
        pytest.skip("no Scoring server yet: set FORESTGATE_SCORING_TARGET=HOST:PORT")
    yield target


@pytest.fixture(scope="module")
def outcome(scoring_target: str, small_dir: Path) -> Outcome:
    settings = Settings(target=scoring_target, data=small_dir, limit=PAYMENTS, seed=1)
    return asyncio.run(simulate(settings, progress=Silent()))


@pytest.mark.live
def test_forestgate_is_at_least_the_incumbent_and_never_breaks_the_rules(
    outcome: Outcome,
) -> None:
    ours, theirs = outcome.forestgate, outcome.incumbent
    assert ours.payments == theirs.payments == PAYMENTS
    assert outcome.notes["errors"] == {}
    assert ours.guardrail_violations == 0
    assert ours.approval_rate >= theirs.approval_rate
    assert ours.net_revenue_usd >= theirs.net_revenue_usd
