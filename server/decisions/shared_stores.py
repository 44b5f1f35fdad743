"""The guardrail's ledgers and the decided attempts in the Redis that several replicas share, so
a card's limits hold across replicas and ReportOutcome may reach any of them.

    l:{card}:{merchant}   the ledger's state as JSON (TTL: the guardrail's retention plus the
                          ledger's reorder window, from its last update)
    a:{authorization id}  hash: the decided attempt as JSON, and `reported` once answered (TTL:
                          the retry horizon, 14 days)

A ledger update is optimistic: WATCH, read, record in Python, write in MULTI/EXEC, and again if
another replica wrote in between, so concurrent outcomes are never lost. The first report of an
attempt wins through HSETNX.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from forestgate.errors import Unavailable
from forestgate.payments.action import Action
from forestgate.payments.featurespec import RETRY_HORIZON_MS
from forestgate.payments.guardrail import Rules, Verdict
from forestgate.payments.history import Attempt
from forestgate.payments.ledger import Ledger, retention
from forestgate.server.decisions.records import SeenAttempt
from forestgate.server.decisions.stores import REORDER_WINDOW, check_all, new_ledger
from forestgate.server.online.shared import redis_errors

MAX_CONFLICTS = 20


class RedisLedgers:
    def __init__(self, client: aioredis.Redis, rules: Rules, *, prefix: str = "fg:") -> None:
        self._client = client
        self.rules = rules
        self._prefix = prefix
        self._ttl_ms = int((retention(rules) + REORDER_WINDOW).total_seconds() * 1000)

    async def check(
        self, card_key: str, merchant_id: str, actions: Sequence[Action], now: dt.datetime
    ) -> list[Verdict]:
        with _unavailable("reading a ledger"):
            raw = await self._client.get(self._key(card_key, merchant_id))
        return check_all(self._ledger(raw, card_key, merchant_id), actions, now)

    async def record(self, attempt: Attempt) -> None:
        key = self._key(attempt.card_key, attempt.merchant_id)
        with _unavailable("recording an attempt"):
            async with self._client.pipeline(transaction=True) as pipe:
                for _ in range(MAX_CONFLICTS):
                    try:
                        await pipe.watch(key)
                        ledger = self._ledger(await pipe.get(key), attempt.card_key,
                                              attempt.merchant_id)  # fmt: skip
                        ledger.record(attempt)
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(key, json.dumps(ledger.to_state()), px=self._ttl_ms)
                        await pipe.execute()
                        return
                    except WatchError:
                        continue
        raise Unavailable(f"ledger {key}: {MAX_CONFLICTS} conflicting updates in a row")

    async def close(self) -> None:
        await self._client.aclose()

    def _ledger(self, raw: bytes | str | None, card_key: str, merchant_id: str) -> Ledger:
        if raw is None:
            return new_ledger(card_key, merchant_id, self.rules)
        return Ledger.from_state(json.loads(raw), self.rules)

    def _key(self, card_key: str, merchant_id: str) -> str:
        return f"{self._prefix}l:{card_key}:{merchant_id}"


class RedisAttempts:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "fg:") -> None:
        self._client = client
        self._prefix = prefix

    async def get(self, authorization_id: str) -> SeenAttempt | None:
        with _unavailable("reading an attempt"):
            fields = await self._client.hgetall(self._key(authorization_id))
        if not fields:
            return None
        seen = SeenAttempt.from_state(json.loads(fields[b"seen"]))
        seen.reported = b"reported" in fields
        return seen

    async def put(self, authorization_id: str, seen: SeenAttempt) -> None:
        key = self._key(authorization_id)
        with _unavailable("remembering an attempt"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(key, "seen", json.dumps(seen.to_state()))
                pipe.pexpire(key, RETRY_HORIZON_MS)
                await pipe.execute()

    async def answer(
        self, authorization_id: str, route_id: str, approved: bool, code: str, advice: str | None
    ) -> SeenAttempt | None:
        key = self._key(authorization_id)
        with _unavailable("recording an outcome"):
            if not await self._client.hsetnx(key, "reported", "1"):
                return None
            raw = await self._client.hget(key, "seen")
        if raw is None:
            return None
        seen = SeenAttempt.from_state(json.loads(raw))
        seen.answered(route_id, approved, code, advice)
        with _unavailable("recording an outcome"):
            await self._client.hset(key, "seen", json.dumps(seen.to_state()))
        return seen

    async def unanswer(self, authorization_id: str) -> None:
        with _unavailable("withdrawing an outcome"):
            await self._client.hdel(self._key(authorization_id), "reported")

    async def close(self) -> None:
        await self._client.aclose()

    def _key(self, authorization_id: str) -> str:
        return f"{self._prefix}a:{authorization_id}"


def _unavailable(what: str) -> AbstractContextManager[None]:
    return redis_errors("decision state", f"{what} in Redis")
