"""Many payments under one policy with bounded concurrency: payments start in time order, and
the payments of one card run one after another, so a card's attempts reach the policy (and the
server's per-card state) in simulated time order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from forestgate.clients.simulate.dataset import Payment
from forestgate.clients.simulate.episode import PaymentResult, Policy, run_payment
from forestgate.clients.simulate.ledger import Ledger
from forestgate.clients.simulate.truth import GroundTruth


async def run_all(
    payments: Sequence[Payment],
    policy: Policy,
    *,
    truth: GroundTruth,
    ledger: Ledger,
    seed: int,
    max_attempts: int,
    concurrency: int = 1,
    on_done: Callable[[PaymentResult], None] = lambda _: None,
) -> list[PaymentResult]:
    """Every payment's result, in the order of ``payments``."""
    queue: asyncio.Queue[Payment] = asyncio.Queue()
    for payment in payments:
        queue.put_nowait(payment)
    locks: dict[str, asyncio.Lock] = {}
    results: dict[int, PaymentResult] = {}

    async def worker() -> None:
        while not queue.empty():
            payment = queue.get_nowait()
            card = Ledger.key(payment)[0]
            # Taken right after the payment leaves the queue (no await in between), so the
            # lock's FIFO order is the payments' time order. Locks are kept (one per card):
            # dropping one a waiter still holds would let two payments of a card overlap.
            lock = locks.setdefault(card, asyncio.Lock())
            async with lock:
                result = await run_payment(
                    payment, policy, truth=truth, ledger=ledger, seed=seed,
                    max_attempts=max_attempts,
                )  # fmt: skip
            results[payment.index] = result
            on_done(result)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return [results[p.index] for p in payments]
