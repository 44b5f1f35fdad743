"""Rules H1-H13 and the internal budget, one or more tests per rule and per boundary.

Every test runs twice: through ``guardrail.check`` over the History, and through a ``Ledger``
that recorded the same attempts (and went through a JSON snapshot) answering ``Ledger.check``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

from forestgate.errors import InvalidInput
from forestgate.payments.guardrail import Action, History, Rules, Verdict, card_key, check
from forestgate.payments.ledger import Ledger
from tests.payments.factory import (
    CARD,
    LOOSE_BUDGET,
    MERCHANT,
    SECOND,
    T0,
    action,
    attempt,
    history,
    retries,
    rules_with,
)

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
CHANGE = dt.datetime(2025, 5, 25, tzinfo=dt.UTC)  # Visa 15 -> 20


def verdict(rules: Rules, hist: History, act: Action) -> Verdict:
    return check(act, hist, rules, act.at)


def ledger_verdict(rules: Rules, hist: History, act: Action) -> Verdict:
    ledger = Ledger(hist.card_key, hist.merchant_id, rules)
    for past in hist.attempts:
        ledger.record(past)
    snapshot = json.loads(json.dumps(ledger.to_state()))
    return Ledger.from_state(snapshot, rules).check(act, act.at)


@pytest.fixture(autouse=True, params=["check", "ledger"])
def answerer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Which guardrail answers ``verdict``: the full-history check or the incremental ledger."""
    if request.param == "ledger":
        monkeypatch.setattr(sys.modules[__name__], "verdict", ledger_verdict)


# -- the frame: what is a reattempt, what is bad input --------------------------------------------


def test_a_plain_soft_decline_may_be_retried_and_reports_the_closest_limit(rules: Rules) -> None:
    result = verdict(rules, history(attempt(T0, "05")), action())
    assert result.allowed
    assert result.rule == "internal_budget"  # 1 of 8 beats 1 of 20 Visa reattempts
    assert result.earliest_retry_at is None


@pytest.mark.parametrize("kind", ["no_retry", "update_credentials"])
def test_actions_that_send_no_authorization_are_always_allowed(rules: Rules, kind: str) -> None:
    result = verdict(rules, history(attempt(T0, "41")), action(kind))
    assert result.allowed and result.rule is None


@pytest.mark.parametrize(
    "hist", [history(), history(attempt(T0, approved=True))], ids=["empty", "approved"]
)
def test_nothing_to_retry_without_a_decline(rules: Rules, hist: History) -> None:
    result = verdict(rules, hist, action())
    assert not result.allowed and result.rule == "no_decline"


def test_naive_times_and_time_travel_are_rejected(rules: Rules) -> None:
    naive = dt.datetime(2025, 6, 2, 13)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        action(at=naive)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        attempt(naive)
    hist = history(attempt(T0))
    with pytest.raises(InvalidInput, match="before now"):
        check(action(at=T0 + HOUR), hist, rules, T0 + 2 * HOUR)
    with pytest.raises(InvalidInput, match="after now"):
        check(action(at=T0 + HOUR), hist, rules, T0 - HOUR)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        check(action(at=T0 + HOUR), hist, rules, naive)


def test_bad_actions_and_foreign_attempts_are_rejected() -> None:
    with pytest.raises(InvalidInput, match=r"Action\.kind"):
        action("hammer")
    with pytest.raises(InvalidInput, match="currency"):
        action(currency="XXX")
    with pytest.raises(InvalidInput, match="History of card"):
        History(CARD, MERCHANT, (attempt(card="par:OTHER"),))


# -- H1: Visa category 1, hard declines ------------------------------------------------------------

CATEGORY_1 = ["04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3"]


@pytest.mark.parametrize("code", CATEGORY_1)
def test_h1_visa_category_1_is_never_retried_on_that_credential(rules: Rules, code: str) -> None:
    hist = history(attempt(T0, code))
    for kind in ("retry", "cascade"):
        result = verdict(rules, hist, action(kind, T0 + 40 * DAY, is_mit=False))
        assert not result.allowed and result.rule == "H1", (code, kind, result)
        assert result.earliest_retry_at is None


@pytest.mark.parametrize("code", ["04", "14", "41", "46", "57"])
def test_h1_a_new_credential_may_be_tried(rules: Rules, code: str) -> None:
    hist = history(attempt(T0, code))
    assert verdict(rules, hist, action(credential_changed=True)).allowed


def test_h1_declines_before_a_credential_change_no_longer_bind(rules: Rules) -> None:
    hist = history(
        attempt(T0, "54"),  # expired: category 3
        attempt(T0 + HOUR, "05", credential_changed=True),  # updater gave a new expiry
    )
    assert verdict(rules, hist, action(at=T0 + 2 * HOUR)).allowed
    hist = history(attempt(T0, "41"), attempt(T0 + HOUR, "05"))  # no change in between
    assert verdict(rules, hist, action(at=T0 + 2 * HOUR)).rule == "H1"


def test_h1_a_hard_decline_on_the_new_credential_binds_again(rules: Rules) -> None:
    hist = history(
        attempt(T0, "41"),
        attempt(T0 + HOUR, "05", credential_changed=True),
        attempt(T0 + 2 * HOUR, "46"),  # the new card is closed too
    )
    result = verdict(rules, hist, action(at=T0 + 3 * HOUR))
    assert result.rule == "H1" and "46" in result.reason


def test_h1_binds_the_credential_whatever_the_amount(rules: Rules) -> None:
    hist = history(attempt(T0, "46", amount=500), attempt(T0 + HOUR, "05", amount=1000))
    assert verdict(rules, hist, action(at=T0 + 2 * HOUR)).rule == "H1"


def test_h1_covers_hard_declines_of_other_networks(rules: Rules) -> None:
    hist = history(attempt(T0, "43", network="mastercard"))
    assert verdict(rules, hist, action()).rule == "H1"


def test_h1_follows_the_category_in_force_on_the_decline_date(tmp_path: Path) -> None:
    # An older source puts 62 (restricted card) in category 1; switch to it from 2025-07-01.
    dated = rules_with(
        tmp_path,
        (
            r"    categories:\n      - source: (.*)\n",
            "    categories:\n      - to: 2025-07-01\n        source: \\1\n",
        ),
        (
            r"        category_3: \[(.*)\]\n",
            "        category_3: [\\1]\n"
            "      - from: 2025-07-01\n"
            '        category_1: ["04", "07", "12", "14", "15", "41", "43", "46", "57", "R0",'
            ' "R1", "R3", "62"]\n'
            '        category_2: ["02", "03", "19", "51", "59", "61", "65", "91", "96"]\n'
            '        category_3: ["54", "55", "6P", "82", "N7", "1A"]\n',
        ),
    )
    before = T0
    after = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    assert dated.codes.classify("visa", "62", before.date()).visa_category == 2
    assert dated.codes.classify("visa", "62", after.date()).visa_category == 1
    assert verdict(dated, history(attempt(before, "62")), action(at=before + HOUR)).allowed
    late = verdict(dated, history(attempt(after, "62")), action(at=after + HOUR))
    assert late.rule == "H1"


# -- H2: Visa reattempt cap, 15 before 2025-05-25, 20 from then -----------------------------------


def _visa_reattempts(first: dt.datetime, count: int) -> History:
    """One declined attempt at ``first`` and ``count`` declined reattempts an hour apart."""
    return history(*retries(first, count + 1, HOUR, code="51"))


@pytest.mark.parametrize(("day", "cap"), [(CHANGE - 3 * DAY, 15), (CHANGE + 3 * DAY, 20)])
def test_h2_cap_on_each_side_of_the_change(loose_rules: Rules, day: dt.datetime, cap: int) -> None:
    at = day + 2 * DAY
    last_allowed = verdict(loose_rules, _visa_reattempts(day, cap - 1), action(at=at))
    assert last_allowed.allowed
    assert last_allowed.rule == "H2" and f"{cap} of {cap}" in last_allowed.reason
    denied = verdict(loose_rules, _visa_reattempts(day, cap), action(at=at))
    assert not denied.allowed and denied.rule == "H2"
    # The first reattempt (one hour after the decline) leaves the window 30 days later.
    assert denied.earliest_retry_at == day + HOUR + 30 * DAY


def test_h2_the_cap_changes_at_midnight_utc_on_2025_05_25(loose_rules: Rules) -> None:
    hist = _visa_reattempts(CHANGE - 5 * DAY, 15)
    assert verdict(loose_rules, hist, action(at=CHANGE - SECOND)).rule == "H2"
    assert not verdict(loose_rules, hist, action(at=CHANGE - SECOND)).allowed
    assert verdict(loose_rules, hist, action(at=CHANGE)).allowed


def test_h2_window_is_rolling_30_days(loose_rules: Rules) -> None:
    first = T0
    hist = _visa_reattempts(first, 20)
    oldest_reattempt = first + HOUR
    edge = oldest_reattempt + 30 * DAY
    assert verdict(loose_rules, hist, action(at=edge - SECOND)).rule == "H2"
    assert verdict(loose_rules, hist, action(at=edge)).allowed


def test_h2_counts_per_amount(loose_rules: Rules) -> None:
    others = retries(T0, 21, HOUR, code="51", amount=2000)
    hist = history(*others, attempt(T0 + 30 * HOUR, "51", amount=1000))
    assert verdict(loose_rules, hist, action(at=T0 + 31 * HOUR)).allowed
    assert verdict(loose_rules, hist, action(at=T0 + 31 * HOUR, amount=2000)).rule == "H13"


def test_h2_approvals_do_not_reset_the_scheme_count(loose_rules: Rules) -> None:
    # A monthly retry storm: approvals end each payment, the reattempts still count for 30 days.
    attempts = [*retries(T0, 11, HOUR, code="51"), attempt(T0 + 11 * HOUR, approved=True)]
    attempts += retries(T0 + DAY, 11, HOUR, code="51")
    result = verdict(loose_rules, history(*attempts), action(at=T0 + 2 * DAY))
    assert not result.allowed and result.rule == "H2"


def test_h2_applies_to_visa_only(loose_rules: Rules) -> None:
    hist = history(*retries(T0, 22, 3 * HOUR, code="100", network="amex"))
    assert verdict(loose_rules, hist, action(at=T0 + 70 * HOUR)).allowed


# -- internal budget -------------------------------------------------------------------------------


def test_internal_budget_8_retries_per_failed_payment(rules: Rules) -> None:
    hist = history(*retries(T0, 8, HOUR))  # the decline and 7 retries
    assert verdict(rules, hist, action(at=T0 + 8 * HOUR)).rule == "internal_budget"
    assert verdict(rules, hist, action(at=T0 + 8 * HOUR)).allowed
    hist = history(*retries(T0, 9, HOUR))
    result = verdict(rules, hist, action(at=T0 + 9 * HOUR))
    assert not result.allowed and result.rule == "internal_budget"
    assert result.earliest_retry_at is None


def test_internal_budget_window_14_days_from_the_first_attempt(rules: Rules) -> None:
    hist = history(attempt(T0, "51"))
    assert verdict(rules, hist, action(at=T0 + 14 * DAY)).allowed
    assert verdict(rules, hist, action(at=T0 + 14 * DAY + SECOND)).rule == "internal_budget"


def test_internal_budget_is_per_payment_id(rules: Rules) -> None:
    old = retries(T0, 9, HOUR, payment_id="p1")
    new = attempt(T0 + 20 * HOUR, payment_id="p2")
    assert verdict(rules, history(*old, new), action(at=T0 + 21 * HOUR)).allowed
    # Without payment ids the same amount since the last approval is one payment.
    plain = [*retries(T0, 9, HOUR), attempt(T0 + 20 * HOUR)]
    assert verdict(rules, history(*plain), action(at=T0 + 21 * HOUR)).rule == "internal_budget"


# -- H3: data change required ----------------------------------------------------------------------


@pytest.mark.parametrize("code", ["54", "55", "6P", "82", "N7"])
def test_h3_visa_category_3_needs_changed_data(rules: Rules, code: str) -> None:
    hist = history(attempt(T0, code))
    result = verdict(rules, hist, action())
    assert not result.allowed and result.rule == "H3"
    assert verdict(rules, hist, action(credential_changed=True)).allowed


@pytest.mark.parametrize("mac", ["01", "04"])
def test_h3_mastercard_mac_01_04_need_changed_data(rules: Rules, mac: str) -> None:
    hist = history(attempt(T0, "05", network="mastercard", mac=mac))
    assert verdict(rules, hist, action()).rule == "H3"
    assert verdict(rules, hist, action(credential_changed=True)).allowed


def test_h3_3ds_is_the_data_change_for_sca_only(rules: Rules) -> None:
    step_up = action("cit_3ds", customer_in_session=True, is_mit=False)
    assert verdict(rules, history(attempt(T0, "1A")), step_up).allowed
    assert verdict(rules, history(attempt(T0, "54")), step_up).rule == "H3"


# -- H4: MAC 03 / 21 and stop-payment codes --------------------------------------------------------


@pytest.mark.parametrize("mac", ["03", "21"])
def test_h4_merchant_initiated_never_again(rules: Rules, mac: str) -> None:
    hist = history(attempt(T0, "05", network="mastercard", mac=mac))
    for at in (T0 + HOUR, T0 + 31 * DAY, T0 + 400 * DAY):
        result = verdict(rules, hist, action(at=at, is_mit=True))
        assert not result.allowed and result.rule == "H4"
        assert result.earliest_retry_at is None


@pytest.mark.parametrize("mac", ["03", "21"])
def test_h4_customer_initiated_same_amount_blocked_30_days(tmp_path: Path, mac: str) -> None:
    loose = rules_with(tmp_path, *LOOSE_BUDGET)
    hist = history(attempt(T0, "05", network="mastercard", mac=mac))
    cit = {"is_mit": False, "customer_in_session": True}
    result = verdict(loose, hist, action(at=T0 + 30 * DAY - SECOND, **cit))
    assert not result.allowed and result.rule == "H4"
    assert result.earliest_retry_at == T0 + 30 * DAY
    assert verdict(loose, hist, action(at=T0 + 30 * DAY, **cit)).allowed


def test_h4_mac_21_cancels_the_recurring_schedule(rules: Rules) -> None:
    hist = history(attempt(T0, "05", network="mastercard", mac="21"))
    for kind in ("retry", "no_retry", "update_credentials"):
        assert verdict(rules, hist, action(kind)).cancel_recurring
    mac_03 = history(attempt(T0, "05", network="mastercard", mac="03"))
    assert not verdict(rules, mac_03, action()).cancel_recurring


def test_h4_mac_21_survives_a_credential_change_mac_03_does_not(rules: Rules) -> None:
    for mac, still_denied in (("21", True), ("03", False)):
        hist = history(
            attempt(T0, "05", network="mastercard", mac=mac),
            attempt(T0 + HOUR, "05", network="mastercard", credential_changed=True),
        )
        result = verdict(rules, hist, action(at=T0 + 3 * HOUR, is_mit=True))
        assert (result.rule == "H4") is still_denied, (mac, result)


@pytest.mark.parametrize("code", ["R0", "R1", "R3"])
def test_h4_visa_stop_payment_codes_cancel_recurring(rules: Rules, code: str) -> None:
    result = verdict(rules, history(attempt(T0, code)), action(is_mit=True))
    assert not result.allowed and result.rule == "H4" and result.cancel_recurring


def test_h4_names_the_first_stop_code(rules: Rules) -> None:
    hist = history(attempt(T0, "R0"), attempt(T0 + HOUR, "R1"))
    result = verdict(rules, hist, action(at=T0 + 2 * HOUR))
    assert result.rule == "H4" and result.reason.startswith("code R0:")


def test_h4_mac_03_binds_again_on_the_new_credential(rules: Rules) -> None:
    mc = {"network": "mastercard"}
    hist = history(
        attempt(T0, "05", mac="03", **mc),
        attempt(T0 + HOUR, "05", credential_changed=True, **mc),
        attempt(T0 + 2 * HOUR, "05", mac="03", **mc),
    )
    result = verdict(rules, hist, action(at=T0 + 3 * HOUR))
    assert result.rule == "H4" and result.earliest_retry_at is None


# -- H5: MAC 24-30 delays --------------------------------------------------------------------------

MAC_DELAYS = {"24": 1, "25": 24, "26": 48, "27": 96, "28": 144, "29": 192, "30": 240}


@pytest.mark.parametrize(("mac", "hours"), sorted(MAC_DELAYS.items()))
def test_h5_not_before_the_advised_delay(rules: Rules, mac: str, hours: int) -> None:
    hist = history(attempt(T0, "51", network="mastercard", mac=mac))
    due = T0 + dt.timedelta(hours=hours)
    early = verdict(rules, hist, action(at=due - SECOND))
    assert not early.allowed and early.rule == "H5"
    assert early.earliest_retry_at == due
    assert verdict(rules, hist, action(at=due)).allowed


def test_h5_the_longest_advice_of_the_payment_binds(rules: Rules) -> None:
    hist = history(
        attempt(T0, "51", network="mastercard", mac="30"),
        attempt(T0 + 240 * HOUR, "51", network="mastercard", mac="24"),
    )
    result = verdict(rules, hist, action(at=T0 + 240 * HOUR + 30 * dt.timedelta(minutes=1)))
    assert result.rule == "H5"
    assert result.earliest_retry_at == T0 + 241 * HOUR


def test_h5_among_delays_ending_together_the_first_decline_names_the_code(rules: Rules) -> None:
    hist = history(
        attempt(T0, "05", network="mastercard", mac="25"),  # 24 h
        attempt(T0 + 23 * HOUR, "05", network="mastercard", mac="24"),  # 1 h: ends together
    )
    result = verdict(rules, hist, action(at=T0 + 23 * HOUR + SECOND))
    assert result.rule == "H5" and result.reason.startswith("MAC 25:")
    assert result.earliest_retry_at == T0 + 24 * HOUR


# -- H6: Mastercard excessive attempts -------------------------------------------------------------


def _mc_declines(first: dt.datetime, count: int, every: dt.timedelta, **kw: object) -> list:
    return [
        attempt(first + i * every, "05", network="mastercard", amount=1000 + (i + 1), **kw)
        for i in range(count)
    ]


def test_h6_stops_one_decline_before_10_in_24_hours(rules: Rules) -> None:
    # Different amounts: the 24 h count is per card and merchant; the last decline is retried.
    eight = _mc_declines(T0, 8, HOUR)
    ok = verdict(rules, history(*eight), action(at=T0 + 8 * HOUR, amount=1008))
    assert ok.allowed and ok.rule == "H6"  # this attempt could be decline 9 of 10
    nine = _mc_declines(T0, 9, HOUR)
    result = verdict(rules, history(*nine), action(at=T0 + 9 * HOUR, amount=1009))
    assert not result.allowed and result.rule == "H6"
    assert result.earliest_retry_at == T0 + 24 * HOUR


def test_h6_24_hour_window_boundary(rules: Rules) -> None:
    nine = _mc_declines(T0, 9, HOUR)
    edge = T0 + 24 * HOUR  # the first decline is exactly 24 h old: out of the window
    assert verdict(rules, history(*nine), action(at=edge - SECOND, amount=1009)).rule == "H6"
    assert not verdict(rules, history(*nine), action(at=edge - SECOND, amount=1009)).allowed
    assert verdict(rules, history(*nine), action(at=edge, amount=1009)).allowed


def test_h6_stops_one_decline_before_35_in_30_days(loose_rules: Rules) -> None:
    def same_amount(n: int) -> History:
        return history(*[attempt(T0 + i * 20 * HOUR, "05", network="mastercard") for i in range(n)])

    at = T0 + 34 * 20 * HOUR
    assert verdict(loose_rules, same_amount(33), action(at=at)).allowed
    result = verdict(loose_rules, same_amount(34), action(at=at))
    assert not result.allowed and result.rule == "H6" and "30 days" in result.reason
    assert result.earliest_retry_at == T0 + 30 * DAY


def test_h6_30_day_count_is_per_amount(loose_rules: Rules) -> None:
    others = [attempt(T0 + i * 20 * HOUR, "05", network="mastercard", amount=7) for i in range(34)]
    hist = history(*others, attempt(T0 + 34 * 20 * HOUR, "05", network="mastercard"))
    assert verdict(loose_rules, hist, action(at=T0 + 34 * 20 * HOUR + HOUR)).allowed


def test_h6_applies_to_mastercard_only(rules: Rules) -> None:
    declines = [attempt(T0 + i * HOUR, "05", amount=1000 + i) for i in range(12)]
    assert verdict(rules, history(*declines), action(at=T0 + 12 * HOUR, amount=1011)).allowed


# -- H7: SCA soft declines -------------------------------------------------------------------------

SCA = [("visa", "1A"), ("mastercard", "65"), ("amex", "130"), ("diners", "103")]


@pytest.mark.parametrize(("network", "code"), SCA)
def test_h7_sca_decline_only_as_cit_with_3ds_in_session(
    rules: Rules, network: str, code: str
) -> None:
    hist = history(attempt(T0, code, network=network))
    for kind in ("retry", "cascade"):
        result = verdict(rules, hist, action(kind, is_mit=False, customer_in_session=True))
        assert not result.allowed and result.rule == "H7"
    assert verdict(rules, hist, action("cit_3ds", is_mit=False, customer_in_session=True)).allowed
    for flags in ({"is_mit": True, "customer_in_session": True}, {"is_mit": False}):
        result = verdict(rules, hist, action("cit_3ds", **flags))
        assert not result.allowed and result.rule == "H7", flags


def test_h7_an_sca_decline_earlier_in_the_payment_still_binds(rules: Rules) -> None:
    hist = history(
        attempt(T0, "65", network="mastercard"),
        attempt(T0 + HOUR, "05", network="mastercard", three_ds=True),
    )
    assert verdict(rules, hist, action(at=T0 + 2 * HOUR)).rule == "H7"


# -- H8: card present ------------------------------------------------------------------------------


def test_h8_card_present_declines_are_not_reattempted(rules: Rules) -> None:
    assert verdict(rules, history(attempt(T0, "51", card_present=True)), action()).rule == "H8"
    assert verdict(rules, history(attempt(T0, "51")), action(card_present=True)).rule == "H8"


# -- H9: cascades count, routes never matter -------------------------------------------------------


@pytest.mark.parametrize("route", ["A-US", "A-EU", "D-XB", "E-US-DEBIT", "anything"])
def test_h9_the_route_never_changes_the_verdict(loose_rules: Rules, route: str) -> None:
    hist = history(*[attempt(T0 + i * HOUR, "51", route=f"R{i % 3}") for i in range(21)])
    reference = verdict(loose_rules, hist, action(at=T0 + DAY, route="A-US"))
    assert not reference.allowed and reference.rule == "H2"
    assert verdict(loose_rules, hist, action("cascade", at=T0 + DAY, route=route)) == reference


def test_h9_a_cascade_is_counted_like_any_retry(rules: Rules) -> None:
    hist = history(*[attempt(T0 + i * HOUR, route=f"R{i}") for i in range(9)])
    result = verdict(rules, hist, action("cascade", at=T0 + 9 * HOUR, route="R-new"))
    assert not result.allowed and result.rule == "internal_budget"


# -- H10: PAR keys ---------------------------------------------------------------------------------


def test_h10_card_key_prefers_the_par() -> None:
    assert card_key("V0010013", "pan-hash-1") == "par:V0010013"
    assert card_key(None, "pan-hash-1") == "pan:pan-hash-1"
    assert card_key("", "pan-hash-1") == "pan:pan-hash-1"
    with pytest.raises(InvalidInput):
        card_key(None, "")


def test_h10_pan_and_token_attempts_share_one_budget(rules: Rules) -> None:
    par = "V0010013"
    pan = card_key(par, "hash-of-fpan")
    token = card_key(par, "hash-of-network-token")
    assert pan == token
    mixed = [attempt(T0 + i * HOUR, card=pan if i % 2 else token) for i in range(9)]
    other_card = attempt(T0, card=card_key(None, "someone-else"))
    hist = History.of([*mixed, other_card], card_key=pan, merchant_id=MERCHANT)
    assert len(hist.attempts) == 9
    assert check(action(at=T0 + 9 * HOUR), hist, rules, T0 + 9 * HOUR).rule == "internal_budget"
    assert not check(action(at=T0 + 9 * HOUR), hist, rules, T0 + 9 * HOUR).allowed
    # Without a PAR the two would be two cards with two budgets.
    assert card_key(None, "hash-of-fpan") != card_key(None, "hash-of-network-token")


# -- H11: unknown networks, codes, advice ----------------------------------------------------------


@pytest.mark.parametrize(
    ("network", "code", "mac"),
    [("discover", "05", None), ("visa", "Z9", None), ("mastercard", "05", "99")],
    ids=["network", "code", "advice"],
)
def test_h11_unknown_means_no_automated_retry(
    rules: Rules, network: str, code: str, mac: str | None
) -> None:
    result = verdict(rules, history(attempt(T0, code, network=network, mac=mac)), action())
    assert not result.allowed and result.rule == "H11" and result.earliest_retry_at is None


# -- H12: country carve-outs -----------------------------------------------------------------------


def test_h12_india_issued_cards_get_no_automated_reattempt(rules: Rules) -> None:
    hist = history(attempt(T0, "51", issuer_country="IN"))
    for kind in ("retry", "cascade"):
        assert verdict(rules, hist, action(kind)).rule == "H12"
    in_session = action("cit_3ds", is_mit=False, customer_in_session=True)
    assert verdict(rules, hist, in_session).allowed
    assert verdict(rules, history(attempt(T0, "51", issuer_country="BR")), action()).allowed


def test_h12_carve_outs_come_from_the_rules_file(tmp_path: Path) -> None:
    brazil = "    - {issuer_country: BR, deny: [cascade]}\n"
    custom = rules_with(tmp_path, (r"  country_carve_outs:\n", "  country_carve_outs:\n" + brazil))
    hist = history(attempt(T0, "91", issuer_country="BR"))
    assert verdict(custom, hist, action("cascade")).rule == "H12"
    assert verdict(custom, hist, action("retry")).allowed


# -- H13: the amount stays -------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "currency"), [(999, "USD"), (1001, "USD"), (1000, "EUR")])
def test_h13_a_changed_amount_is_denied(rules: Rules, amount: int, currency: str) -> None:
    result = verdict(rules, history(attempt(T0, "51")), action(amount=amount, currency=currency))
    assert not result.allowed and result.rule == "H13"


def test_h13_splitting_cannot_reset_the_counters(loose_rules: Rules) -> None:
    # 20 Visa reattempts of 1000; a retry of 999 is refused, not counted on a fresh key.
    hist = _visa_reattempts(T0, 20)
    assert verdict(loose_rules, hist, action(at=T0 + DAY, amount=999)).rule == "H13"


# -- combining rules -------------------------------------------------------------------------------


def test_a_permanent_denial_beats_a_time_bound_one(rules: Rules) -> None:
    hist = history(attempt(T0, "51", network="mastercard", mac="27", issuer_country="IN"))
    result = verdict(rules, hist, action())
    assert result.rule == "H12" and result.earliest_retry_at is None


def test_the_time_bound_denial_lapsing_last_binds(rules: Rules) -> None:
    # Nine declines in 24 h (H6 lifts 24 h after the first) and MAC 30 (10 days) on the last.
    nine = _mc_declines(T0, 8, HOUR)
    nine.append(attempt(T0 + 8 * HOUR, "51", network="mastercard", mac="30", amount=1009))
    result = verdict(rules, history(*nine), action(at=T0 + 9 * HOUR, amount=1009))
    assert result.rule == "H5"
    assert result.earliest_retry_at == T0 + 8 * HOUR + 10 * DAY


def test_history_orders_attempts_by_time_and_grows_by_copy() -> None:
    late, early = attempt(T0 + HOUR), attempt(T0)
    hist = history(late, early)
    assert hist.attempts == (early, late) and hist.last == late
    grown = hist.with_attempt(attempt(T0 + 2 * HOUR))
    assert len(grown.attempts) == 3 and len(hist.attempts) == 2
    assert history().last is None
