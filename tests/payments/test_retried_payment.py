"""The action names the payment it retries: another payment of the same card at the same merchant
sent in between no longer stands in for the failed one (issue 14)."""

from __future__ import annotations

import datetime as dt

from forestgate.payments.guardrail import Rules, check
from tests.payments.factory import T0, action, attempt, history

HOUR = dt.timedelta(hours=1)


def test_a_retry_is_judged_against_its_own_payment_not_the_latest_attempt(rules: Rules) -> None:
    hist = history(
        attempt(T0, "51", amount=1000, payment_id="p1"),
        attempt(T0 + HOUR, "05", amount=2500, payment_id="p2"),  # another purchase in between
    )
    retry = action(at=T0 + 2 * HOUR, amount=1000, payment_id="p1")
    verdict = check(retry, hist, rules, retry.at)
    assert verdict.allowed, verdict
    assert verdict.rule == "internal_budget"
    assert verdict.reason == "allowed; closest limit internal_budget: retry 1 of 8 for this payment"


def test_an_approved_payment_in_between_does_not_hide_the_decline(rules: Rules) -> None:
    hist = history(
        attempt(T0, "51", payment_id="p1"),
        attempt(T0 + HOUR, approved=True, amount=700, payment_id="p2"),
    )
    retry = action(at=T0 + 2 * HOUR, payment_id="p1")
    assert check(retry, hist, rules, retry.at).allowed


def test_without_a_payment_id_the_latest_attempt_is_still_the_failed_one(rules: Rules) -> None:
    hist = history(
        attempt(T0, "51", amount=1000, payment_id="p1"),
        attempt(T0 + HOUR, "05", amount=2500, payment_id="p2"),
    )
    retry = action(at=T0 + 2 * HOUR, amount=1000)
    verdict = check(retry, hist, rules, retry.at)
    assert not verdict.allowed and verdict.rule == "H13"


def test_the_named_payment_carries_its_own_declines_and_budget(rules: Rules) -> None:
    hist = history(
        attempt(T0, "05", network="mastercard", mac="25", payment_id="p1"),
        attempt(T0 + HOUR, "05", network="mastercard", amount=2500, payment_id="p2"),
    )
    retry = action(at=T0 + 2 * HOUR, payment_id="p1")
    verdict = check(retry, hist, rules, retry.at)
    assert not verdict.allowed and verdict.rule == "H5"  # p1's MAC 25: 24 h
    assert verdict.earliest_retry_at == T0 + 24 * HOUR


def test_a_payment_the_history_does_not_hold_has_nothing_to_retry(rules: Rules) -> None:
    hist = history(attempt(T0, "05", payment_id="p1", mac="21", network="mastercard"))
    retry = action(at=T0 + HOUR, payment_id="p9")
    verdict = check(retry, hist, rules, retry.at)
    assert not verdict.allowed and verdict.rule == "no_decline"
    assert verdict.reason == "no attempt of payment p9 to retry"
    assert verdict.cancel_recurring  # the history's MAC 21 still asks to stop the schedule
