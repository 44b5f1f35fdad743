"""`forestgate simulate` without a server: held-out payments, requests, ground truth, the
incumbent policy, the guardrail re-check and the metrics, on the small generated data set."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import pytest

from forestgate.cli import main
from forestgate.clients.simulate import dataset
from forestgate.clients.simulate.dataset import Payment
from forestgate.clients.simulate.driver import Pacer
from forestgate.clients.simulate.episode import Attempted, Choice, NextAttempt
from forestgate.clients.simulate.incumbent import Incumbent, incumbent_route
from forestgate.clients.simulate.ledger import Ledger
from forestgate.clients.simulate.metrics import table_rows
from forestgate.clients.simulate.request import score_request
from forestgate.clients.simulate.runner import run_all
from forestgate.clients.simulate.session import World, run_incumbent, summarise
from forestgate.clients.simulate.truth import Answer, Draws, delay_bucket
from forestgate.payments.action import ActionKind
from forestgate.training.trainer.features import held_out_from

LIMIT = 1_500


@pytest.fixture(scope="module")
def world(small_dir: Path) -> World:
    return World.load(small_dir, limit=LIMIT)


def run(world: World, policy: object, *, seed: int = 0) -> list:  # type: ignore[type-arg]
    return asyncio.run(
        run_all(world.payments, policy, truth=world.truth, ledger=Ledger(), seed=seed,  # type: ignore[arg-type]
                max_attempts=4)
    )  # fmt: skip


def test_held_out_payments_are_first_attempts_of_the_last_days(
    world: World, small_dir: Path
) -> None:
    attempts = dataset.read(small_dir, "attempts.parquet").to_pylist()
    first_day = min(a["ts_utc"] for a in attempts).date()
    start = held_out_from(first_day, max(a["ts_utc"] for a in attempts).date())
    assert len(world.payments) == LIMIT
    times = [p.first.at for p in world.payments]
    assert times == sorted(times) and times[0] >= start
    firsts = {a["payment_id"] for a in attempts if a["parent_attempt_id"] is None}
    assert all(p.payment_id in firsts for p in world.payments)
    assert all(set(p.first.p_by_route) == set(p.eligible_routes) for p in world.payments)
    assert sum(len(p.reattempts) for p in world.payments) > 0


def test_score_request_carries_the_logged_request_and_no_pan(world: World) -> None:
    payment = world.payments[0]
    request = score_request(payment, "a-1", at=payment.first.at)
    row = payment.row
    assert list(request.candidate_routes) == list(payment.eligible_routes)
    assert request.amount.amount_minor == row["amount_minor"]
    assert request.card.pan_hash == row["pan_hash"] and request.card.bin == row["bin8"]
    assert request.time.ToDatetime(tzinfo=dt.UTC) == payment.first.at
    assert not request.advise_retry and not request.declines
    text = str(request)
    assert not re.search(r"\b\d{13,19}\b", text)  # nothing that looks like a card number
    declined = Attempted(
        "a-1", None, payment.first.at, "A-US", Answer(False, "51", "", 0.5), "insufficient_funds"
    )
    retry = score_request(payment, "a-2", at=payment.first.at, declines=[declined])
    assert retry.advise_retry and retry.declines[-1].response_code == "51"


def test_the_logged_route_gives_the_logged_answer(world: World) -> None:
    for payment in world.payments[:400]:
        logged = payment.first
        answer = world.truth.first(payment, logged.route_id, Draws.of(7, payment.index, 0))
        assert answer.approved == logged.approved
        if not logged.approved:
            assert answer.response_code == logged.response_code


def test_other_routes_keep_their_true_approval_probability(world: World) -> None:
    # Over payments (the log's own draws included), a route other than the logged one approves
    # as often as its true probability says; one payment alone is conditioned on its log.
    hits, expected, variance = 0, 0.0, 0.0
    for payment in world.payments:
        other = [r for r in payment.eligible_routes if r != payment.first.route_id]
        if not other:
            continue
        p = payment.first.p_by_route[other[0]]
        hits += world.truth.first(payment, other[0], Draws.of(11, payment.index, 0)).approved
        expected, variance = expected + p, variance + p * (1 - p)
    assert abs(hits - expected) < 4 * variance**0.5


def test_recovery_rates_come_from_the_log(world: World) -> None:
    assert delay_bucket(1) == 0 and delay_bucket(86_400) == 4 and delay_bucket(10**7) == 8
    technical = world.truth.recovery_rate("technical", 3_600)
    hard = world.truth.recovery_rate("hard", 86_400)
    assert technical > 0.5 and hard < 0.1
    # A 3DS step-up after an SCA decline recovers; re-entered card data (customer retries in
    # the log) is never pooled with the plain reattempts the simulator sends.
    assert world.truth.recovery_rate("sca", 150, step_up=True) > 0.5
    assert world.truth.recovery_rate("data", 150) < 0.1
    kinds = {a.kind for p in world.payments for a in p.reattempts}
    assert "new_card" not in kinds and "retry" in kinds


def test_the_incumbent_route_is_the_logging_policys_incumbent(world: World) -> None:
    same = [incumbent_route(p, world.pricing) == p.first.route_id for p in world.payments]
    # The log explores a uniform route 7% of the time (epsilon), so it agrees ~93%+.
    assert 0.9 < sum(same) / len(same) < 1.0


def test_the_incumbent_retries_merchant_initiated_declines_on_fixed_v1(world: World) -> None:
    results = asyncio.run(run_incumbent(world, seed=3, max_attempts=4))
    retried = [r for r in results if len(r.attempts) > 1]
    assert retried and all(not r.payment.is_cit for r in retried)
    for r in retried:
        first, second = r.attempts[0], r.attempts[1]
        delay = (second.at - first.at).total_seconds()
        assert delay in (3_600, 86_400) or delay >= 86_400  # 1 h technical, 1 d, or a MAC wait
        assert second.route_id == first.route_id and second.kind is ActionKind.RETRY
    again = asyncio.run(run_incumbent(world, seed=3, max_attempts=4))
    assert summarise("a", results, world.pricing) == summarise("a", again, world.pricing)


class Copycat(Incumbent):
    """The incumbent under another name: with common random numbers it must score the same."""

    name = "copycat"


class Hammer:
    """Retries every decline a minute later on the same route: the guardrail must object."""

    name = "hammer"

    async def first(self, payment: Payment) -> Choice:
        return Choice(payment.first.route_id, f"h-{payment.payment_id}-1")

    async def next(self, payment: Payment, sent: list[Attempted]) -> NextAttempt | None:
        last = sent[-1]
        return NextAttempt(
            ActionKind.RETRY, last.at + dt.timedelta(minutes=1), last.route_id,
            f"h-{payment.payment_id}-{len(sent) + 1}",
        )  # fmt: skip

    async def report(self, payment: Payment, attempt: Attempted) -> None:
        return None


def test_common_random_numbers_make_equal_policies_score_equally(world: World) -> None:
    incumbent = asyncio.run(run_incumbent(world, seed=5, max_attempts=4))
    copy = run(world, Copycat(world.pricing, world.truth.codes), seed=5)
    a, b = summarise("x", incumbent, world.pricing), summarise("x", copy, world.pricing)
    assert a == b


def test_the_guardrail_counts_what_a_reckless_policy_sends(world: World) -> None:
    results = run(world, Hammer())
    reckless = summarise("hammer", results, world.pricing)
    assert reckless.guardrail_violations > 0
    assert reckless.attempts_per_payment > 1


def test_the_table_compares_both_policies(world: World) -> None:
    results = asyncio.run(run_incumbent(world, seed=1, max_attempts=4))
    ours = summarise("forestgate", results, world.pricing)
    theirs = summarise("incumbent", results[: LIMIT // 2], world.pricing)
    rows = {label: rest for label, *rest in table_rows(ours, theirs)}
    assert rows["payments"] == [f"{LIMIT:,}", f"{LIMIT // 2:,}", f"+{LIMIT - LIMIT // 2:,}"]
    assert rows["approval rate (final)"][2].endswith(" pp")
    assert 0.8 < ours.approval_rate < 0.97 and ours.net_revenue_usd > 0
    assert ours.cost_per_approved_usd > 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--target", "nohost"], "--target: expected HOST:PORT"),
        (["--target", "h:1", "--limit", "0"], "--limit: expected a positive integer"),
        (["--target", "h:1", "--rate", "-1"], "--rate: expected a positive number"),
        (["--target", "h:1", "--data", "/nonexistent"], "is not a directory"),
    ],
)
def test_user_errors_exit_2_on_one_line(
    flags: list[str], message: str, small_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["simulate", "--data", str(small_dir), *flags]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_pacer_spaces_calls_open_loop_on_fake_time() -> None:
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    async def calls() -> None:
        pacer = Pacer(4.0, clock=lambda: now[0], sleep=sleep)
        for _ in range(3):
            await pacer.slot()
        now[0] += 10.0  # a stall: one second's worth of calls (4) catches up, then pacing
        for _ in range(6):
            await pacer.slot()

    asyncio.run(calls())
    assert waits == [0.25, 0.25, 0.25]
    unpaced = Pacer(None, clock=lambda: 0.0, sleep=sleep)
    asyncio.run(unpaced.slot())
    assert len(waits) == 3
