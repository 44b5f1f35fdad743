"""The Redis store on a real redis-server: replicas updating the same keys at once lose nothing,
late attempts are handled as the memory state handles them, keys expire by event time, and a
Redis that does not answer is Unavailable."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import numpy as np
import pytest

from forestgate.errors import InvalidInput, Unavailable
from forestgate.payments.codes import ResponseCodes
from forestgate.payments.features import APPROVAL_FEATURES, DAY_MS, RETRY_HORIZON_MS, Answer
from forestgate.payments.routetable import RouteTable
from tests.attempts import ANSWERS, OFFSETS, ROUTES, T0_MS, Stream, new_state, request, stream
from tests.redisserver import free_port

redis = pytest.importorskip("redis", reason="the redis extra is not installed")
from forestgate.server.online.shared import RedisFeatures  # noqa: E402


async def connect(url: str, prefix: str) -> RedisFeatures:
    return await RedisFeatures.connect(
        url,
        routes=RouteTable.load(),
        codes=ResponseCodes.load(),
        utc_offset_s=OFFSETS,
        prefix=prefix,
    )


@pytest.fixture
def fresh(redis_url: str) -> str:
    """An empty database for one test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return redis_url


def probe_rows(store_rows: Callable[..., np.ndarray], after_ms: int) -> np.ndarray:
    return np.stack(
        [store_rows(request(10**6 + c, after_ms, card=f"card-{c}"), ROUTES) for c in range(3)]
    )


def memory_rows(attempts: Stream, after_ms: int) -> np.ndarray:
    state = new_state()
    for req, ans in attempts:
        state.observe(req, ans)
    return probe_rows(state.approval_rows, after_ms)


async def redis_rows(store: RedisFeatures, after_ms: int) -> np.ndarray:
    rows = [
        await store.approval_rows(request(10**6 + c, after_ms, card=f"card-{c}"), ROUTES)
        for c in range(3)
    ]
    return np.stack(rows)


def test_concurrent_replicas_lose_no_update(fresh: str) -> None:
    attempts = stream(400, seed=3, span_ms=DAY_MS // 2)
    after = attempts[-1][0].ts_ms + 1

    async def run() -> np.ndarray:
        replicas = [await connect(fresh, "concurrent:") for _ in range(4)]
        # Every replica takes every 4th attempt; all of them in flight at once, so the updates
        # of the same card, route and merchant keys interleave on the server.
        await asyncio.gather(
            *(
                replicas[i % 4].observe(req, ans)
                for i, (req, ans) in enumerate(attempts)
                if ans.approved or ans.response_code != "51"  # no NSF: recoveries need order
            )
        )
        rows = await redis_rows(replicas[0], after)
        await asyncio.gather(*(r.close() for r in replicas))
        return rows

    no_nsf = [(q, a) for q, a in attempts if a.approved or a.response_code != "51"]
    expected = memory_rows(no_nsf, after)
    assert expected[:, :, APPROVAL_FEATURES.index("card_attempts_24h")].sum() > 300
    np.testing.assert_allclose(asyncio.run(run()), expected, rtol=1e-6)


def test_late_attempts_are_handled_as_the_memory_state_handles_them(fresh: str) -> None:
    arrival = stream(150, seed=11)
    random.Random(11).shuffle(arrival)
    after = max(q.ts_ms for q, _ in arrival) + 1

    async def run() -> np.ndarray:
        store = await connect(fresh, "late:")
        for req, ans in arrival:
            await store.observe(req, ans)
        rows = await redis_rows(store, after)
        await store.close()
        return rows

    # Same arrival order on both sides: even the order-dependent recoveries agree.
    np.testing.assert_allclose(asyncio.run(run()), memory_rows(arrival, after), rtol=1e-6)


def test_keys_expire_by_event_time(fresh: str) -> None:
    async def run() -> None:
        store = await connect(fresh, "ttl:")
        client = redis.asyncio.Redis.from_url(fresh)
        await store.observe(request(1, T0_MS + 20 * DAY_MS), ANSWERS[0])
        late = request(2, T0_MS + 20 * DAY_MS - RETRY_HORIZON_MS + DAY_MS, card="c-2")
        await store.observe(late, Answer(False, "05"))
        # A day of its horizon is left, on the Redis clock.
        left = await client.pttl("ttl:d:2")
        assert DAY_MS - 60_000 < left <= DAY_MS
        too_late = request(3, T0_MS + 20 * DAY_MS - RETRY_HORIZON_MS, card="c-3")
        await store.observe(too_late, Answer(False, "05"))
        assert not await client.exists("ttl:d:3", "ttl:p:pay-3")
        with pytest.raises(InvalidInput, match="not an observed decline"):
            await store.retry_rows(too_late, [(3600, ROUTES[0])])
        assert await client.pttl("ttl:c:card-1") == -1, "card totals never expire"
        await client.aclose()
        await store.close()

    asyncio.run(run())


def test_a_redis_that_does_not_answer_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="online features"):
        asyncio.run(connect(f"redis://127.0.0.1:{free_port()}/0", "none:"))
