"""`forestgate simulate` against a real Scoring server, a few thousand held-out payments.

The server (a real grpc.aio server on port 0) serves the demo models `forestgate train` built
from the same generated data set the simulator replays (the `trained` session fixture); the
simulator takes the held-out days, which training did not fit on.

What the test expects of the server: it answers every Score within the deadline, chooses among
the candidate routes, advises only guardrail-allowed reattempts (0 violations when the
simulator re-checks them), and its approval rate and net revenue are at least the incumbent's
on the same payments and draws.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from forestgate.clients.simulate.session import Outcome, Settings, simulate
from tests.server.conftest import _serve
from tests.trained import Trained

PAYMENTS = 3_000


class Silent:
    def start(self, description: str, total: int) -> None:
        return None

    def advance(self, result: object) -> None:
        return None


@pytest.fixture(scope="module")
def outcome(trained: Trained) -> Iterator[Outcome]:
    for server in _serve(trained.repository, metrics_port=-1):
        settings = Settings(target=server.address, data=trained.data, limit=PAYMENTS, seed=1)
        yield asyncio.run(simulate(settings, progress=Silent()))


def test_forestgate_is_at_least_the_incumbent_and_never_breaks_the_rules(
    outcome: Outcome,
) -> None:
    ours, theirs = outcome.forestgate, outcome.incumbent
    assert ours.payments == theirs.payments == PAYMENTS
    assert outcome.notes["errors"] == {}
    assert ours.guardrail_violations == 0
    assert ours.approval_rate >= theirs.approval_rate
    assert ours.net_revenue_usd >= theirs.net_revenue_usd
