"""The Redis online feature store: the counts of payments.online.FeatureState kept in one Redis
that several server replicas share.

Data model (every key under ``prefix``; ids never contain ':'):

    wm                            the watermark: newest ts_ms observed (no TTL)
    c:{card}                      hash: approvals, approved_usd, last_approval, last_nsf,
                                  last_recovery, recoveries, newest_ts/id/nsf (no TTL: all-time)
    ca:{card}, cd:{card}          zsets of the card's attempts and declines (member attempt id,
                                  score ts_ms)
    ra:{kind}:{ids}, rh:{kind}:{ids}
                                  zsets of a rate key's attempts and approvals; kind is route,
                                  issuer_route, bin_route or merchant
    p:{payment}                   hash: attempts, first_decline, newest
    d:{attempt}                   hash: the decline record (code, family, advice, attempts so
                                  far and first decline of its payment)

Expiry is the memory state's: each update drops a zset's entries older than watermark -
history_ms (event time), and gives every key it touched a TTL of (newest ts + ttl - watermark)
on the Redis clock, ttl being history_ms for zsets and RETRY_HORIZON_MS for payments and
declines; live, event time is the Redis clock, so an idle key expires when the memory state
would drop it. Counts are exact: ZCOUNT over (anchor - window, anchor].

Round trips: ``observe`` is one EVALSHA (scripts.OBSERVE, atomic, so concurrent replicas never
lose an update); ``approval_rows`` and ``retry_rows`` are one EVALSHA each (scripts.COUNTS reads
the card, the decline and 2 zsets per rate key: 2 x (3 x routes + 1)), a consistent read. All the
keys of one call sit in one Redis; a Redis Cluster would need them hash-tagged to one slot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from forestgate.errors import Unavailable
from forestgate.payments.codes import Family, ResponseCodes
from forestgate.payments.counts import (
    CardCounts,
    Counts,
    DeclineRecord,
    RouteCounts,
    merchant_key,
    missing_decline,
    rate_keys,
    route_keys,
)
from forestgate.payments.featurespec import (
    CARD_WINDOWS_MS,
    DAY_MS,
    LONGEST_WINDOW_MS,
    RATE_WINDOW_MS,
    RETRY_HORIZON_MS,
    Answer,
    Request,
)
from forestgate.payments.routetable import RouteTable
from forestgate.payments.vectors import F32, FeatureBuilder
from forestgate.server.online.scripts import COUNTS, OBSERVE


class RedisFeatures:
    """Online features in a shared Redis. Build with ``connect`` (or from a client you own), and
    ``close`` at shutdown; every method is one round trip."""

    def __init__(
        self,
        client: aioredis.Redis,
        builder: FeatureBuilder,
        *,
        prefix: str = "fg:",
        lateness_ms: int = DAY_MS,
    ) -> None:
        self._client = client
        self._builder = builder
        self._prefix = prefix
        self._history_ms = LONGEST_WINDOW_MS + lateness_ms
        self._observe = client.register_script(OBSERVE)
        self._counts = client.register_script(COUNTS)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        routes: RouteTable,
        codes: ResponseCodes,
        utc_offset_s: Mapping[str, int],
        prefix: str = "fg:",
        lateness_ms: int = DAY_MS,
    ) -> RedisFeatures:
        """A store on the Redis at ``url`` (redis://host:port/db); Unavailable if it does not
        answer a PING."""
        client = aioredis.Redis.from_url(url)
        with _unavailable(url):
            try:
                await client.ping()
            except RedisError:
                await client.aclose()
                raise
        builder = FeatureBuilder(routes=routes, codes=codes, utc_offset_s=utc_offset_s)
        return cls(client, builder, prefix=prefix, lateness_ms=lateness_ms)

    async def approval_rows(self, request: Request, route_ids: Sequence[str]) -> F32:
        card, _, routes, merchant = await self._read(
            request, route_ids, anchor_ms=request.ts_ms, decline_key=self._key("d", "none")
        )
        return self._builder.approval_rows(
            request, route_ids, card=card, routes=routes, merchant=merchant
        )

    async def retry_rows(self, decline: Request, candidates: Sequence[tuple[int, str]]) -> F32:
        card, record, routes, merchant = await self._read(
            decline,
            [route for _, route in candidates],
            anchor_ms=decline.ts_ms,
            decline_key=self._key("d", str(decline.attempt_id)),
        )
        if record is None:
            raise missing_decline(decline.attempt_id)
        return self._builder.retry_rows(
            decline, candidates, record=record, card=card, routes=routes, merchant=merchant
        )

    async def observe(self, request: Request, answer: Answer) -> None:
        outcome = self._builder.outcome(request, answer)
        keys = [
            self._key("wm"),
            *self._card_keys(request.card_key),
            self._key("p", request.payment_id),
            self._key("d", str(request.attempt_id)),
            *self._rate_keys(rate_keys(request, request.route_id)),
        ]
        args = [
            *(request.ts_ms, request.attempt_id, int(answer.approved), int(outcome.nsf)),
            *(repr(request.amount_usd), outcome.family.value, answer.response_code),
            "" if outcome.visa_category is None else outcome.visa_category,
            answer.merchant_advice_code or "",
            *(self._history_ms, RETRY_HORIZON_MS),
        ]
        with _unavailable("redis"):
            await self._observe(keys=keys, args=args)

    async def close(self) -> None:
        await self._client.aclose()

    async def _read(
        self, request: Request, route_ids: Sequence[str], *, anchor_ms: int, decline_key: str
    ) -> tuple[CardCounts, DeclineRecord | None, list[RouteCounts], Counts]:
        # One zset pair per distinct rate key: candidates often repeat a route.
        distinct = list(dict.fromkeys(k for r in route_ids for k in route_keys(request, r)))
        keys = [*self._card_keys(request.card_key), decline_key]
        keys += self._rate_keys([*distinct, merchant_key(request)])
        args = [*(anchor_ms - w for w in (*CARD_WINDOWS_MS, RATE_WINDOW_MS)), anchor_ms]
        with _unavailable("redis"):
            card, windows, decline, flat = await self._counts(keys=keys, args=args)
        pairs = [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]
        counts = dict(zip(distinct, pairs, strict=False))
        routes = [RouteCounts(*(counts[k] for k in route_keys(request, r))) for r in route_ids]
        return _card(card, windows), _decline(decline), routes, pairs[-1]

    def _key(self, kind: str, *ids: str) -> str:
        return ":".join((self._prefix + kind, *ids))

    def _card_keys(self, card_key: str) -> list[str]:
        return [self._key("c", card_key), self._key("ca", card_key), self._key("cd", card_key)]

    def _rate_keys(self, keys: Sequence[tuple[str, ...]]) -> list[str]:
        return [self._key(side, *key) for key in keys for side in ("ra", "rh")]


def _card(totals: list[Any], windows: list[int]) -> CardCounts:
    approvals, usd, approval, nsf, recovery, recoveries = totals
    n24, d24, n7, d7 = (int(w) for w in windows)
    return CardCounts(
        attempts_24h=n24,
        declines_24h=d24,
        attempts_7d=n7,
        declines_7d=d7,
        approvals=int(approvals or 0),
        approved_usd=float(usd or 0.0),
        last_approval_ms=_int(approval),
        last_nsf_ms=_int(nsf),
        last_recovery_ms=_int(recovery),
        recoveries=int(recoveries or 0),
    )


def _decline(fields: list[Any]) -> DeclineRecord | None:
    ts, family, code, visa, advice, attempts, first = fields
    if ts is None:
        return None
    return DeclineRecord(
        ts_ms=int(ts),
        family=Family(family.decode()),
        code=code.decode(),
        visa_category=_int(visa),
        advice=advice.decode() or None,
        attempts_so_far=int(attempts),
        first_decline_ms=_int(first),
    )


def _int(value: bytes | None) -> int | None:
    return int(value) if value else None


@contextmanager
def redis_errors(component: str, what: str) -> Iterator[None]:
    """Redis failures become Unavailable, "<component>: <what> failed: <error>" (a retry
    elsewhere or later may succeed). The decision state's Redis stores use it too."""
    try:
        yield
    except RedisError as e:
        raise Unavailable(f"{component}: {what} failed: {e}") from e


def _unavailable(where: str) -> AbstractContextManager[None]:
    return redis_errors("online features", where)


__all__ = ["RedisFeatures", "redis_errors"]
