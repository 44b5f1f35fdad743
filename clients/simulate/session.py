"""One simulation run: load the held-out payments, run the incumbent and ForestGate over them on
the same draws, and sum both into summaries. The incumbent arm needs no server, so it also runs
alone (``run_incumbent``), which is what the tests use."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc

from forestgate.clients.simulate import SimulateError, dataset
from forestgate.clients.simulate.driver import ForestGate, Pacer
from forestgate.clients.simulate.episode import PaymentResult
from forestgate.clients.simulate.incumbent import Incumbent
from forestgate.clients.simulate.ledger import Ledger
from forestgate.clients.simulate.metrics import Summary, Tally, report
from forestgate.clients.simulate.pricing import Pricing
from forestgate.clients.simulate.runner import run_all
from forestgate.clients.simulate.truth import GroundTruth

CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Settings:
    target: str
    data: Path
    rate: float | None = None
    limit: int | None = None
    concurrency: int = 8
    max_attempts: int = 4
    deadline_s: float = 1.0
    seed: int = 0


class Progress(Protocol):
    def start(self, description: str, total: int) -> None: ...

    def advance(self, result: PaymentResult) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    forestgate: Summary
    incumbent: Summary
    notes: dict[str, Any]  # failed calls and the advice received
    document: dict[str, Any]  # the --json document


@dataclass(frozen=True, slots=True)
class World:
    """What both arms share: the payments, the truth they are resolved against, the prices."""

    payments: list[dataset.Payment]
    truth: GroundTruth
    pricing: Pricing

    @classmethod
    def load(cls, data: Path, *, limit: int | None) -> World:
        loaded = dataset.load(data, limit=limit)
        truth = GroundTruth(loaded.attempts, loaded.issuers, loaded.mac_routes)
        return cls(loaded.payments, truth, Pricing())


def summarise(name: str, results: Sequence[PaymentResult], pricing: Pricing) -> Summary:
    tally = Tally(name)
    for result in results:
        tally.add(result, pricing)
    return tally.summary()


async def run_incumbent(
    world: World,
    *,
    seed: int,
    max_attempts: int,
    on_done: Callable[[PaymentResult], None] = lambda _: None,
) -> list[PaymentResult]:
    policy = Incumbent(world.pricing, world.truth.codes)
    return await run_all(
        world.payments, policy, truth=world.truth, ledger=Ledger(), seed=seed,
        max_attempts=max_attempts, on_done=on_done,
    )  # fmt: skip


async def simulate(settings: Settings, *, progress: Progress) -> Outcome:
    async with grpc.aio.insecure_channel(settings.target) as channel:
        await _connect(channel, settings.target)  # before the data: a wrong target fails fast
        world = World.load(settings.data, limit=settings.limit)
        progress.start("incumbent", len(world.payments))
        incumbent = await run_incumbent(
            world, seed=settings.seed, max_attempts=settings.max_attempts, on_done=progress.advance
        )
        policy = ForestGate(
            channel, world.pricing, pacer=Pacer(settings.rate), deadline_s=settings.deadline_s
        )
        progress.start("forestgate", len(world.payments))
        ours = await run_all(
            world.payments, policy, truth=world.truth, ledger=Ledger(), seed=settings.seed,
            max_attempts=settings.max_attempts, concurrency=settings.concurrency,
            on_done=progress.advance,
        )  # fmt: skip
    summaries = (
        summarise("forestgate", ours, world.pricing),
        summarise("incumbent", incumbent, world.pricing),
    )
    notes = {"errors": dict(policy.errors), "advice": dict(policy.advice)}
    run = {"target": settings.target, "data": str(settings.data), "seed": settings.seed,
           "max_attempts": settings.max_attempts, "rate": settings.rate}  # fmt: skip
    return Outcome(*summaries, notes, report(*summaries, {**run, **notes}))


async def _connect(channel: grpc.aio.Channel, target: str) -> None:
    try:
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_S)
    except TimeoutError:
        raise SimulateError(
            f"--target: no server answered at {target} within {CONNECT_TIMEOUT_S:.0f} s"
        ) from None
