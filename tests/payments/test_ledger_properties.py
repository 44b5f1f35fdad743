"""Property: the incremental Ledger and the full-history ``guardrail.check`` give the same Verdict.

Hypothesis plays random runs of one card at one merchant: several payments interleaved (with and
without payment ids), candidate actions of every kind naming a payment or none, outcomes recorded
whether or not the guardrail allowed them (so denied states are reached too), some arriving late,
and the ledger sometimes rebuilt from its JSON snapshot. Before every action both answer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from forestgate.payments.guardrail import Action, Attempt, History, Rules, Verdict, check
from forestgate.payments.ledger import Ledger, retention
from tests.payments.factory import CARD, MERCHANT, rules_with
from tests.payments.test_guardrail_properties import (
    TIGHT,
    RuleSets,
    Scenario,
    Step,
    answer,
    scenarios,
)

# Long generated runs are the point; Hypothesis's size and speed checks would cut them short.
RUNS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LATE_S = [0] * 6 + [1, 600, 3600, 6 * 3600]  # how late an outcome is recorded


@pytest.fixture(scope="module")
def rule_sets(rules: Rules, tmp_path_factory: pytest.TempPathFactory) -> RuleSets:
    return RuleSets(packaged=rules, tight=rules_with(Path(tmp_path_factory.mktemp("t")), *TIGHT))


@dataclass
class Run:
    """One scenario's state: the attempts, the ledger, and the payments made so far."""

    rules: Rules
    ledger: Ledger
    attempts: list[Attempt] = field(default_factory=list)
    payments: list[tuple[str | None, int]] = field(default_factory=list)  # (id, amount)

    def record(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)
        self.ledger.record(attempt)

    def both(self, act: Action, now: dt.datetime) -> tuple[Verdict, Verdict]:
        history = History(CARD, MERCHANT, tuple(self.attempts))
        return check(act, history, self.rules, now), self.ledger.check(act, now)

    def forgotten(self, payment_id: str | None) -> bool:
        """The documented exception: a payment with a gap longer than the retention, or none of
        whose attempts is inside it."""
        if payment_id is None or not self.attempts:
            return False
        times = sorted(a.at for a in self.attempts if a.payment_id == payment_id)
        if not times:
            return False
        span = retention(self.rules)
        newest = max(a.at for a in self.attempts)
        gaps = any(b - a > span for a, b in itertools.pairwise(times))
        return gaps or times[-1] < newest - span


def play(rules: Rules, scenario: Scenario, picks: list[int], late: list[int]) -> None:
    network, now, issuer, plan = scenario
    run = Run(rules, Ledger(CARD, MERCHANT, rules))
    for n, step in enumerate(plan):
        now += dt.timedelta(seconds=step.wait_s or 0)
        pick = picks[n % len(picks)]
        if step.kind == "new" or not run.payments:
            payment_id = None if pick % 4 == 0 else f"p{len(run.payments)}"
            run.payments.append((payment_id, 1000 + (pick % 3) * 250))
            outcome = attempt_of(network, step, issuer, at=now, payment=run.payments[-1])
            run.record(outcome)
            continue
        payment_id, amount = run.payments[pick % len(run.payments)]
        named = payment_id if pick % 5 else None  # sometimes the old way: the latest attempt
        act = action_of(step, now, amount, named)
        expected, got = run.both(act, now)
        if run.forgotten(named):
            event("forgotten payment")
            assert not expected.allowed and not got.allowed
        else:
            assert got == expected, (act, run.attempts)
        event(f"{'allowed' if expected.allowed else 'denied'} by {expected.rule}")
        if act.is_reattempt and (expected.allowed or pick % 3 == 0):
            sent = now - dt.timedelta(seconds=late[n % len(late)])  # maybe before others
            paid = (payment_id, amount)
            if run.attempts and sent < max(a.at for a in run.attempts):
                event("an outcome recorded out of time order")
            run.record(attempt_of(network, step, issuer, at=sent, payment=paid, act=act))
        if pick == 7:  # a snapshot round trip through JSON, as the server does on shutdown
            event("a snapshot round trip")
            state = json.loads(json.dumps(run.ledger.to_state()))
            run.ledger = Ledger.from_state(state, rules)

    target(float(len(run.attempts)), label="attempts recorded")


def action_of(step: Step, now: dt.datetime, amount: int, payment_id: str | None) -> Action:
    return Action(
        kind=step.kind,
        at=now,
        route=step.route,
        amount_minor=amount + step.amount_delta,
        currency="USD",
        card_present=step.card_present,
        credential_changed=step.credential_changed,
        customer_in_session=step.customer_in_session,
        is_mit=step.is_mit,
        payment_id=payment_id,
    )


def attempt_of(
    network: str,
    step: Step,
    issuer: str,
    *,
    at: dt.datetime,
    payment: tuple[str | None, int],
    act: Action | None = None,
) -> Attempt:
    payment_id, amount = payment
    return Attempt(
        **answer(network, step, issuer),
        at=at,
        amount_minor=amount if act is None else act.amount_minor,
        payment_id=payment_id,
        is_mit=step.is_mit,
        card_present=step.card_present,
        credential_changed=act is not None and act.credential_changed,
        three_ds=act is not None and act.kind == "cit_3ds",
    )


@RUNS
@given(
    scenario=scenarios(),
    picks=st.lists(st.integers(min_value=0, max_value=11), min_size=1, max_size=40),
    late=st.lists(st.sampled_from(LATE_S), min_size=1, max_size=20),
)
@pytest.mark.parametrize("rule_set", ["packaged", "tight"])
def test_the_ledger_gives_the_verdict_of_the_full_history(
    rule_sets: RuleSets, rule_set: str, scenario: Scenario, picks: list[int], late: list[int]
) -> None:
    play(rule_sets[rule_set], scenario, picks, late)


def hammering(scenario: Scenario) -> Scenario:
    """A US card-not-present run of retries of a few payments at their own amount: nothing but
    the counters can stop it."""
    network, start, _, plan = scenario
    steps = [
        dataclasses.replace(
            step,
            kind=step.kind if step.kind != "new" or n % 20 == 0 else "retry",
            card_present=False,
            amount_delta=0,
        )
        for n, step in enumerate(plan)
    ]
    return network, start, "US", steps


@RUNS
@given(
    scenario=scenarios(
        networks=("mastercard", "visa"),
        tempos_s=(300, 3600, 6 * 3600, 3 * 86_400),
        codes={"mastercard": ["05", "51", "91"], "visa": ["05", "51", "91"]},
        macs=[None, None, None, "02", "24"],
    ).map(hammering),
    picks=st.lists(st.sampled_from([3, 6, 9, 1, 2, 7]), min_size=1, max_size=10),
    late=st.lists(st.sampled_from(LATE_S), min_size=1, max_size=20),
)
@pytest.mark.parametrize("rule_set", ["packaged", "tight"])
def test_the_ledger_counts_like_the_full_history_up_to_the_caps(
    rule_sets: RuleSets, rule_set: str, scenario: Scenario, picks: list[int], late: list[int]
) -> None:
    """Soft declines only, outcomes recorded allowed or not: the counters reach their caps."""
    play(rule_sets[rule_set], scenario, picks, late)
