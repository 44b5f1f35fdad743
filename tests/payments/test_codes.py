"""The response-code taxonomy read from rules.yaml: outcomes, families, Visa categories by date,
Mastercard groups and advice codes, and what an unknown code means."""

from __future__ import annotations

import datetime as dt

import pytest

from forestgate.payments.codes import (
    AdviceAction,
    CodeInfo,
    Family,
    Outcome,
    ResponseCodes,
)

ON = dt.date(2025, 6, 1)


@pytest.fixture(scope="module")
def codes() -> ResponseCodes:
    return ResponseCodes.load()


@pytest.mark.parametrize(
    "case",
    [
        ("visa", "00", Outcome.APPROVED, Family.APPROVED, None),
        ("visa", "05", Outcome.SOFT, Family.GENERIC, 4),
        ("visa", "51", Outcome.SOFT, Family.INSUFFICIENT_FUNDS, 2),
        ("visa", "91", Outcome.SOFT, Family.TECHNICAL, 2),
        ("visa", "59", Outcome.SOFT, Family.SUSPECTED_FRAUD, 2),
        ("visa", "54", Outcome.SOFT, Family.DATA, 3),
        ("visa", "1A", Outcome.SOFT, Family.SCA, 3),
        ("visa", "14", Outcome.HARD, Family.DATA, 1),  # needs a new PAN: category 1
        ("visa", "41", Outcome.HARD, Family.HARD, 1),
        ("visa", "R1", Outcome.HARD, Family.HARD, 1),
        ("visa", "13", Outcome.SOFT, Family.DATA, 4),
        ("mastercard", "65", Outcome.SOFT, Family.SCA, None),
        ("mastercard", "51", Outcome.SOFT, Family.INSUFFICIENT_FUNDS, None),
        ("mastercard", "43", Outcome.HARD, Family.HARD, None),
        ("amex", "130", Outcome.SOFT, Family.SCA, None),
        ("amex", "000", Outcome.APPROVED, Family.APPROVED, None),
        ("diners", "103", Outcome.SOFT, Family.SCA, None),
    ],
)
def test_classify(codes: ResponseCodes, case: tuple[str, str, Outcome, Family, int | None]) -> None:
    network, code, outcome, family, category = case
    info = codes.classify(network, code, ON)
    assert (info.outcome, info.family, info.visa_category) == (outcome, family, category)
    assert info.known and info.network == network and info.code == code


def test_visa_categories_follow_the_documented_table(codes: ResponseCodes) -> None:
    by_category: dict[int | None, set[str]] = {}
    for info in codes.codes("visa", on=ON):
        by_category.setdefault(info.visa_category, set()).add(info.code)
    assert by_category[1] == {
        "04",
        "07",
        "12",
        "14",
        "15",
        "41",
        "43",
        "46",
        "57",
        "R0",
        "R1",
        "R3",
    }
    assert {"02", "03", "19", "51", "59", "61", "62", "65", "91", "93", "96"} <= by_category[2]
    assert by_category[3] == {"54", "55", "6P", "82", "N7", "1A"}
    assert {"01", "05", "13", "30", "58", "63", "92"} <= by_category[4]
    assert by_category[None] == {"00", "08", "10", "11", "85"}


def test_outcome_is_hard_exactly_for_hard_family_or_category_1(codes: ResponseCodes) -> None:
    for network in codes.networks:
        for info in codes.codes(network, on=ON):
            hard = info.family is Family.HARD or info.visa_category == 1
            assert (info.outcome is Outcome.HARD) is hard, info
            assert (info.outcome is Outcome.APPROVED) is (info.family is Family.APPROVED), info


@pytest.mark.parametrize("network", ["visa", "mastercard"])
def test_every_family_has_codes_to_draw_from(codes: ResponseCodes, network: str) -> None:
    for family in Family:
        drawn = codes.codes(network, family, on=ON)
        assert drawn, (network, family)
        assert all(info.family is family for info in drawn)


def test_codes_of_an_unknown_network_is_empty(codes: ResponseCodes) -> None:
    assert codes.codes("discover", on=ON) == ()


def test_unknown_codes_and_networks_are_explicit(codes: ResponseCodes) -> None:
    code = codes.classify("visa", "Z9", ON)
    assert not code.known and code.description == "unknown code"
    assert (code.outcome, code.family, code.visa_category) == (Outcome.SOFT, Family.GENERIC, None)
    assert not code.retry_later_ok and not code.cascade_now_ok
    network = codes.classify("discover", "05", ON)
    assert not network.known and network.description == "unknown network"


def test_network_names_are_case_insensitive(codes: ResponseCodes) -> None:
    assert codes.classify("VISA", "51", ON) == codes.classify("visa", "51", ON)


def test_a_datetime_is_classified_by_its_utc_date(codes: ResponseCodes) -> None:
    # 2025-05-24 23:30 at UTC-2 is 2025-05-25 01:30 UTC.
    local = dt.datetime(2025, 5, 24, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert codes.classify("visa", "05", local) == codes.classify("visa", "05", dt.date(2025, 5, 25))


def test_retry_and_cascade_flags(codes: ResponseCodes) -> None:
    assert codes.classify("visa", "91", ON).cascade_now_ok
    assert not codes.classify("visa", "51", ON).cascade_now_ok  # another acquirer, same issuer
    assert codes.classify("visa", "51", ON).retry_later_ok
    assert not codes.classify("visa", "41", ON).retry_later_ok
    assert codes.classify("visa", "00", ON).approved


def test_mastercard_groups(codes: ResponseCodes) -> None:
    assert codes.classify("mastercard", "54", ON).mc_group == "79"
    assert codes.classify("mastercard", "65", ON).mc_group == "82"
    assert codes.classify("mastercard", "63", ON).mc_group == "83"
    assert codes.classify("mastercard", "51", ON).mc_group is None
    assert codes.classify("visa", "54", ON).mc_group is None


def test_stop_payment_codes_cancel_recurring(codes: ResponseCodes) -> None:
    cancelling = {i.code for i in codes.codes("visa", on=ON) if i.cancels_recurring}
    assert cancelling == {"R0", "R1", "R3"}


@pytest.mark.parametrize(
    ("mac", "hours"),
    [("24", 1), ("25", 24), ("26", 48), ("27", 96), ("28", 144), ("29", 192), ("30", 240)],
)
def test_merchant_advice_delays(codes: ResponseCodes, mac: str, hours: int) -> None:
    advice = codes.merchant_advice(mac)
    assert advice.action is AdviceAction.RETRY_AFTER
    assert advice.retry_after == dt.timedelta(hours=hours)


def test_merchant_advice_actions(codes: ResponseCodes) -> None:
    assert codes.merchant_advice("01").action is AdviceAction.UPDATE_CREDENTIALS
    assert codes.merchant_advice("04").action is AdviceAction.UPDATE_CREDENTIALS
    assert codes.merchant_advice("02").action is AdviceAction.RETRY_LATER
    assert codes.merchant_advice("03").action is AdviceAction.NEVER_RETRY
    assert not codes.merchant_advice("03").cancels_recurring
    assert codes.merchant_advice("21").action is AdviceAction.NEVER_RETRY
    assert codes.merchant_advice("21").cancels_recurring
    assert codes.merchant_advice("40").action is AdviceAction.INFORMATIONAL
    unknown = codes.merchant_advice("99")
    assert unknown.action is AdviceAction.UNKNOWN and not unknown.known


def test_code_info_is_a_value(codes: ResponseCodes) -> None:
    info = codes.classify("visa", "51", ON)
    assert isinstance(info, CodeInfo)
    with pytest.raises(AttributeError):
        info.family = Family.HARD  # type: ignore[misc]
