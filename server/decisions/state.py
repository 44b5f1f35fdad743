"""The online state decisions read and update, in one place: the features (velocity counters,
trailing approval rates), the guardrail's ledgers (one per card and merchant), and the attempts
Score decided, by authorization id, for ReportOutcome and later retry consultations.

Two backends, chosen by ``--online-store``: in process (``memory``, saved to
``--online-snapshot`` on graceful shutdown and loaded at start), or a Redis URL that several
replicas share. The feature state needs each country's clock, which comes with the approval
model's reference data, so the state is opened once that model is loaded.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from forestgate.errors import ConfigError, InvalidInput
from forestgate.payments.action import Action
from forestgate.payments.codes import ResponseCodes
from forestgate.payments.featurespec import Answer, Request
from forestgate.payments.guardrail import Rules, Verdict
from forestgate.payments.history import Attempt
from forestgate.payments.routetable import RouteTable
from forestgate.payments.vectors import F32
from forestgate.server.decisions.records import SeenAttempt
from forestgate.server.decisions.stores import MemoryAttempts, MemoryLedgers
from forestgate.server.online.memory import MemoryFeatures
from forestgate.server.online.store import OnlineFeatures

# Attempt ids need to be unique, not secret: a generator seeded from the OS once per process
# (and again in each forked worker, which would otherwise repeat its parent's stream) spares
# every Score the system call that secrets.randbits makes (2% of a Score's server time).
_ATTEMPT_IDS = random.Random(secrets.randbits(128))
os.register_at_fork(after_in_child=lambda: _ATTEMPT_IDS.seed(secrets.randbits(128)))


class Ledgers(Protocol):
    async def check(
        self, card_key: str, merchant_id: str, actions: Sequence[Action], now: dt.datetime
    ) -> list[Verdict]: ...
    async def record(self, attempt: Attempt) -> None: ...
    async def close(self) -> None: ...


class Attempts(Protocol):
    async def get(self, authorization_id: str) -> SeenAttempt | None: ...
    async def put(self, authorization_id: str, seen: SeenAttempt) -> None: ...
    async def answer(
        self, authorization_id: str, route_id: str, approved: bool, code: str, advice: str | None
    ) -> SeenAttempt | None: ...
    async def unanswer(self, authorization_id: str) -> None: ...
    async def close(self) -> None: ...


class DecisionState:
    def __init__(self, features: OnlineFeatures, ledgers: Ledgers, attempts: Attempts) -> None:
        self.features = features
        self.ledgers = ledgers
        self.attempts = attempts

    @staticmethod
    def next_attempt_id() -> int:
        """The feature state's id of a new attempt (it orders attempts of one timestamp and
        keys declines): random 62 bits, so replicas and restarts never reuse one."""
        return _ATTEMPT_IDS.getrandbits(62)

    async def seen(self, authorization_id: str) -> SeenAttempt | None:
        return await self.attempts.get(authorization_id)

    async def remember(self, authorization_id: str, seen: SeenAttempt) -> None:
        await self.attempts.put(authorization_id, seen)

    async def report(self, authorization_id: str, answer: Answer, route_id: str) -> bool:
        """Record the outcome of a remembered attempt; False if it was already reported."""
        seen = await self.attempts.answer(
            authorization_id, route_id, answer.approved, answer.response_code,
            answer.merchant_advice_code,
        )  # fmt: skip
        if seen is None:
            return False
        try:
            await self.ledgers.record(seen.attempt)
        except InvalidInput:
            # Too late for the guardrail to file in its place: refused whole, so a corrected
            # report can come again and nothing counts half.
            await self.attempts.unanswer(authorization_id)
            raise
        await self.features.observe(seen.request, answer)
        return True

    async def check(
        self, card_key: str, merchant_id: str, actions: Sequence[Action], now: dt.datetime
    ) -> list[Verdict]:
        return await self.ledgers.check(card_key, merchant_id, actions, now)

    async def approval_rows(self, request: Request, route_ids: Sequence[str]) -> F32:
        return await self.features.approval_rows(request, route_ids)

    async def retry_rows(self, decline: Request, candidates: Sequence[tuple[int, str]]) -> F32:
        return await self.features.retry_rows(decline, candidates)

    async def close(self) -> None:
        for part in (self.features, self.ledgers, self.attempts):
            await part.close()


StateOpener = Callable[[Mapping[str, int]], Awaitable[DecisionState]]


def state_opener(
    store: str,
    *,
    snapshot_dir: Path | None,
    routes: RouteTable,
    codes: ResponseCodes,
    rules: Rules,
    max_attempts: int,
) -> StateOpener:
    """How the state opens once the countries' clocks are known: ``store`` is ``memory`` or a
    redis:// URL."""

    async def open_state(utc_offset_s: Mapping[str, int]) -> DecisionState:
        if store == "memory":
            if snapshot_dir is not None:
                # Made now, so an unwritable directory fails at start, not at shutdown.
                snapshot_dir.mkdir(parents=True, exist_ok=True)
            features: OnlineFeatures = MemoryFeatures.open(
                routes=routes, codes=codes, utc_offset_s=utc_offset_s,
                snapshot_path=None if snapshot_dir is None else snapshot_dir / "features.json",
            )  # fmt: skip
            ledgers: Ledgers = MemoryLedgers(rules, snapshot=_file(snapshot_dir, "ledgers"))
            attempts: Attempts = MemoryAttempts(
                max_attempts=max_attempts, snapshot=_file(snapshot_dir, "attempts")
            )
            return DecisionState(features, ledgers, attempts)
        return await _open_shared(store, routes=routes, codes=codes, rules=rules,
                                  utc_offset_s=utc_offset_s)  # fmt: skip

    return open_state


async def _open_shared(
    url: str,
    *,
    routes: RouteTable,
    codes: ResponseCodes,
    rules: Rules,
    utc_offset_s: Mapping[str, int],
) -> DecisionState:
    """The Redis backend, imported only when asked for: redis is an optional extra."""
    try:
        import redis.asyncio as aioredis

        from forestgate.server.decisions.shared_stores import RedisAttempts, RedisLedgers
        from forestgate.server.online.shared import RedisFeatures
    except ImportError:
        raise ConfigError(
            f"setting online_store={url!r} needs the redis extra: pip install 'forestgate[redis]'"
        ) from None
    features = await RedisFeatures.connect(
        url, routes=routes, codes=codes, utc_offset_s=utc_offset_s
    )
    ledgers = RedisLedgers(aioredis.Redis.from_url(url), rules)
    attempts = RedisAttempts(aioredis.Redis.from_url(url))
    return DecisionState(features, ledgers, attempts)


def _file(directory: Path | None, name: str) -> Path | None:
    return None if directory is None else directory / f"{name}.json"
