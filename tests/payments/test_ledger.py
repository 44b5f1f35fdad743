"""The Ledger's own contract: what it refuses to record, late outcomes, snapshots, forgetting.

Per-rule behaviour runs through the Ledger in test_guardrail.py (every test there runs against
both answerers) and at random in test_ledger_properties.py.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from forestgate.errors import InvalidInput
from forestgate.payments.guardrail import Action, Attempt, History, Rules, Verdict, check
from forestgate.payments.ledger import Ledger, retention
from tests.payments.factory import CARD, MERCHANT, T0, action, attempt, rules_with

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def filled(rules: Rules, *attempts: Attempt, **options: dt.timedelta) -> Ledger:
    ledger = Ledger(CARD, MERCHANT, rules, **options)
    for past in attempts:
        ledger.record(past)
    return ledger


def full_check(rules: Rules, attempts: list[Attempt], act: Action) -> Verdict:
    return check(act, History(CARD, MERCHANT, tuple(attempts)), rules, act.at)


def test_retention_is_the_longest_window_of_the_rules(rules: Rules, tmp_path: Path) -> None:
    assert retention(rules) == 30 * DAY
    longer = rules_with(
        tmp_path, (r"visa_window_days:\n    - \{value: 30,", "visa_window_days:\n    - {value: 45,")
    )
    assert retention(longer) == 45 * DAY


def test_attempts_of_another_card_or_merchant_are_refused(rules: Rules) -> None:
    ledger = Ledger(CARD, MERCHANT, rules)
    with pytest.raises(InvalidInput, match="Ledger of card"):
        ledger.record(attempt(card="par:OTHER"))
    with pytest.raises(InvalidInput, match="Ledger of card"):
        ledger.record(attempt(merchant="m-999"))


def test_check_refuses_time_travel_like_the_full_check(rules: Rules) -> None:
    ledger = filled(rules, attempt(T0))
    with pytest.raises(InvalidInput, match="after now"):
        ledger.check(action(at=T0 + HOUR), T0 - HOUR)
    with pytest.raises(InvalidInput, match="before now"):
        ledger.check(action(at=T0 + HOUR), T0 + 2 * HOUR)


def test_an_empty_ledger_has_nothing_to_retry(rules: Rules) -> None:
    verdict = Ledger(CARD, MERCHANT, rules).check(action(), T0)
    assert not verdict.allowed and verdict.rule == "no_decline"


def test_a_late_outcome_is_filed_in_its_place(rules: Rules) -> None:
    # p1 declined with MAC 25 (24 h), p2 approved; p1's decline arrives after p2's approval.
    p1 = attempt(T0, "05", network="mastercard", mac="25", payment_id="p1")
    p2 = attempt(T0 + HOUR, network="mastercard", approved=True, amount=700, payment_id="p2")
    ledger = filled(rules, p2, p1)
    for act in (action(at=T0 + 2 * HOUR), action(at=T0 + 2 * HOUR, payment_id="p1")):
        assert ledger.check(act, act.at) == full_check(rules, [p1, p2], act)
    assert ledger.check(action(at=T0 + 2 * HOUR, payment_id="p1"), T0 + 2 * HOUR).rule == "H5"


def test_a_late_credential_change_retires_the_declines_before_it(rules: Rules) -> None:
    hard = attempt(T0, "41")
    changed = attempt(T0 + HOUR, "05", credential_changed=True)
    later = attempt(T0 + 2 * HOUR, "05")
    ledger = filled(rules, hard, later, changed)  # the change's outcome arrived last
    act = action(at=T0 + 3 * HOUR)
    assert ledger.check(act, act.at) == full_check(rules, [hard, changed, later], act)
    assert ledger.check(act, act.at).allowed


def test_an_outcome_older_than_the_reorder_window_is_refused(rules: Rules) -> None:
    ledger = filled(rules, attempt(T0), attempt(T0 + 3 * HOUR), reorder_window=HOUR)
    ledger.record(attempt(T0 + 2 * HOUR + 30 * dt.timedelta(minutes=1)))  # inside the window
    with pytest.raises(InvalidInput, match="too late"):
        ledger.record(attempt(T0 - HOUR))


def test_a_snapshot_is_json_and_answers_like_the_ledger(rules: Rules) -> None:
    attempts = [
        attempt(T0, "05", network="mastercard", mac="24", payment_id="p1"),
        attempt(T0 + HOUR, "51", network="mastercard", amount=2500, payment_id="p2"),
        attempt(T0 + 2 * HOUR, "05", network="mastercard", mac="21", payment_id="p3"),
    ]
    ledger = filled(rules, *attempts)
    copy = Ledger.from_state(json.loads(json.dumps(ledger.to_state())), rules)
    assert copy.to_state() == ledger.to_state()
    for payment_id in ("p1", "p2", "p3", None):
        act = action(at=T0 + 3 * HOUR, is_mit=False, payment_id=payment_id)
        assert copy.check(act, act.at) == ledger.check(act, act.at)
        assert copy.check(act, act.at) == full_check(rules, attempts, act)
    copy.record(attempt(T0 + 4 * HOUR, payment_id="p4"))  # and it goes on recording


def test_a_snapshot_of_other_rules_or_format_is_refused(rules: Rules, tmp_path: Path) -> None:
    state = filled(rules, attempt(T0)).to_state()
    other = rules_with(tmp_path, (r'^version: "2025\.05\.1"', 'version: "2026.01.1"'))
    with pytest.raises(InvalidInput, match="built under rules"):
        Ledger.from_state(state, other)
    with pytest.raises(InvalidInput, match="format"):
        Ledger.from_state({**state, "format": 99}, rules)
    with pytest.raises(InvalidInput, match="malformed"):
        Ledger.from_state({**state, "recent": [{"$what": 1}]}, rules)


def test_memory_keeps_only_the_retention(rules: Rules) -> None:
    """Two attempts a day for 120 days, each a new payment: the times and payments kept are
    those of the last 30 days; first declines and declined amounts are running totals."""
    ledger = Ledger(CARD, MERCHANT, rules)
    for n in range(240):
        ledger.record(attempt(T0 + n * 12 * HOUR, "05", amount=1000 + n % 3, payment_id=f"p{n}"))
    state = ledger.to_state()
    kept = json.dumps(state)
    assert len(ledger._tally.declines) == 60 + 1  # 30 days of two a day, both ends included
    assert len(ledger._tally.payments) == 61
    assert "p100" not in kept and "p239" in kept
    assert len(kept) < 60_000


def test_a_forgotten_payment_is_refused_as_the_full_check_refuses_it(rules: Rules) -> None:
    old = attempt(T0, "05", payment_id="p1")
    recent = attempt(T0 + 40 * DAY, "05", payment_id="p2")
    ledger = filled(rules, old, recent)
    act = action(at=T0 + 40 * DAY + HOUR, payment_id="p1")
    expected = full_check(rules, [old, recent], act)
    assert not expected.allowed and expected.rule == "internal_budget"
    got = ledger.check(act, act.at)
    assert not got.allowed and got.rule == "no_decline"
    assert got.reason == "no attempt of payment p1 to retry"
