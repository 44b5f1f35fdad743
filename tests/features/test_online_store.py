"""The server's online feature stores against the SQL of training, through their async interface
(forestgate.server.online): the memory store replays the whole small data set and every row of
the four feature tables equals the SQL; a restart halfway (close saves the snapshot, open loads
it) changes no feature; the Redis store, on a real redis-server, equals the memory store.

The Redis replay costs a round trip per attempt and per row set, so it takes a deterministic
subset, a quarter of the cards (crc32 of the card key = 0 mod REDIS_CARD_SHARE) with all their
attempts and all their rows, compared with the memory store fed the same subset (which the full
replay ties to the SQL); about 30 s on 2 shared cores.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from forestgate.payments import features as pf
from forestgate.payments.codes import ResponseCodes
from forestgate.payments.routetable import RouteTable
from forestgate.server.online import MemoryFeatures, OnlineFeatures
from forestgate.training.trainer.features import FeatureTables, utc_offsets
from tests.features.test_online import assert_same, matrix, requests

REDIS_CARD_SHARE = 4
TABLES = (
    ("approval", pf.APPROVAL_FEATURES),
    ("route_candidates", pf.APPROVAL_FEATURES),
    ("retry", pf.RETRY_FEATURES),
    ("retry_candidates", pf.RETRY_FEATURES),
)
Stream = list[tuple[pf.Request, pf.Answer]]
Matrices = dict[str, npt.NDArray[np.float32]]
World = tuple[RouteTable, ResponseCodes, dict[str, int]]


@dataclass
class Plan:
    """Which table rows each attempt fills: (table, row, route) before it is observed, and
    (table, row, delay_s, route) of its retries once it is."""

    scored: dict[int, list[tuple[str, int, str]]] = field(default_factory=lambda: defaultdict(list))
    retried: dict[int, list[tuple[str, int, int, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    rows: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, tables: FeatureTables, stream: Stream) -> Plan:
        plan = cls()
        routes = {req.attempt_id: req.route_id for req, _ in stream}
        for i, a in enumerate(tables.approval["attempt_id"].to_pylist()):
            plan.scored[a].append(("approval", i, routes[a]))
        rc = tables.route_candidates.select(["attempt_id", "route_id"]).to_pydict().values()
        for i, (a, r) in enumerate(zip(*rc, strict=True)):
            plan.scored[a].append(("route_candidates", i, r))
        for name in ("retry", "retry_candidates"):
            t = getattr(tables, name).select(["parent_attempt_id", "delay_s", "route_id"])
            for i, (p, d, r) in enumerate(zip(*t.to_pydict().values(), strict=True)):
                plan.retried[p].append((name, i, d, r))
        plan.rows = {name: getattr(tables, name).num_rows for name, _ in TABLES}
        return plan

    def only(self, attempt_ids: set[int]) -> Plan:
        """The rows of those attempts alone (the tables keep their size)."""
        return Plan(
            scored={a: v for a, v in self.scored.items() if a in attempt_ids},
            retried={a: v for a, v in self.retried.items() if a in attempt_ids},
            rows=self.rows,
        )


async def replay(
    store: OnlineFeatures,
    stream: Stream,
    plan: Plan,
    *,
    restart_at: int | None = None,
    reopen: Callable[[], Awaitable[OnlineFeatures]] | None = None,
) -> Matrices:
    """Every planned row, computed as the stream goes by (NaN where a row was not reached)."""
    out = {
        name: np.full((plan.rows[name], len(names)), np.nan, np.float32) for name, names in TABLES
    }
    for n, (req, ans) in enumerate(stream):
        if n == restart_at and reopen is not None:
            await store.close()
            store = await reopen()
        if scored := plan.scored.get(req.attempt_id):
            rows = await store.approval_rows(req, [route for _, _, route in scored])
            for (name, i, _), row in zip(scored, rows, strict=True):
                out[name][i] = row
        await store.observe(req, ans)
        if retried := plan.retried.get(req.attempt_id):
            rows = await store.retry_rows(req, [(delay, route) for _, _, delay, route in retried])
            for (name, i, _, _), row in zip(retried, rows, strict=True):
                out[name][i] = row
    await store.close()
    return out


@pytest.fixture(scope="module")
def world(data_dir: Path) -> World:
    return RouteTable.load(), ResponseCodes.load(), utc_offsets(data_dir)


@pytest.fixture(scope="module")
def stream(data_dir: Path) -> Stream:
    return requests(data_dir)


@pytest.fixture(scope="module")
def plan(tables: FeatureTables, stream: Stream) -> Plan:
    return Plan.of(tables, stream)


def memory(world: World, path: Path | None = None) -> MemoryFeatures:
    routes, codes, offsets = world
    return MemoryFeatures.open(routes=routes, codes=codes, utc_offset_s=offsets, snapshot_path=path)


@pytest.fixture(scope="module")
def uninterrupted(world: World, stream: Stream, plan: Plan) -> Matrices:
    return asyncio.run(replay(memory(world), stream, plan))


def test_the_memory_store_equals_the_sql(tables: FeatureTables, uninterrupted: Matrices) -> None:
    for name, names in TABLES:
        assert_same(name, matrix(getattr(tables, name), names), uninterrupted[name], names)


def test_a_restart_from_the_snapshot_changes_no_feature(
    world: World, stream: Stream, plan: Plan, uninterrupted: Matrices, tmp_path: Path
) -> None:
    path = tmp_path / "online.json"

    async def reopen() -> OnlineFeatures:
        assert path.exists(), "close did not save the snapshot"
        return memory(world, path)

    half = len(stream) // 2
    restarted = asyncio.run(
        replay(memory(world, path), stream, plan, restart_at=half, reopen=reopen)
    )
    for name, _ in TABLES:
        np.testing.assert_array_equal(restarted[name], uninterrupted[name], err_msg=name)


def test_the_redis_store_equals_the_memory_store(
    world: World, stream: Stream, plan: Plan, redis_url: str
) -> None:
    from forestgate.server.online.shared import RedisFeatures

    subset = [(q, a) for q, a in stream if zlib.crc32(q.card_key.encode()) % REDIS_CARD_SHARE == 0]
    subset_plan = plan.only({q.attempt_id for q, _ in subset})
    expected = asyncio.run(replay(memory(world), subset, subset_plan))

    async def redis_replay() -> Matrices:
        routes, codes, offsets = world
        store = await RedisFeatures.connect(
            redis_url, routes=routes, codes=codes, utc_offset_s=offsets, prefix="parity:"
        )
        return await replay(store, subset, subset_plan)

    got = asyncio.run(redis_replay())
    for name, names in TABLES:
        reached = ~np.isnan(expected[name]).all(axis=1)
        assert reached.sum() > 0, f"the subset reaches no row of {name}"
        assert_same(name, expected[name][reached], got[name][reached], names)
