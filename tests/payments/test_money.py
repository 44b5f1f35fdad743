"""Money in integer minor units: ISO 4217 exponents, named rounding, conversions, no floats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forestgate.errors import InvalidInput
from forestgate.payments.errors import UnknownCurrency
from forestgate.payments.money import (
    EXPONENTS,
    ExchangeRates,
    Money,
    Rounding,
    convert,
    exponent,
    to_minor,
)

REQUIRED = {
    "USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KRW": 0, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2,
    "PLN": 2, "CZK": 2, "HUF": 2, "BRL": 2, "MXN": 2, "INR": 2, "AUD": 2, "CAD": 2, "SGD": 2,
    "HKD": 2, "CNY": 2, "ZAR": 2, "AED": 2, "KWD": 3, "BHD": 3, "JOD": 3, "TND": 3, "CLP": 0,
    "ISK": 0,
}  # fmt: skip


@pytest.mark.parametrize(("currency", "expected"), sorted(REQUIRED.items()))
def test_iso_4217_exponents(currency: str, expected: int) -> None:
    assert exponent(currency) == expected


def test_every_exponent_is_0_2_or_3_and_codes_are_iso_shaped() -> None:
    assert set(EXPONENTS.values()) <= {0, 2, 3}
    assert all(len(c) == 3 and c.isupper() and c.isalpha() for c in EXPONENTS)


@pytest.mark.parametrize("currency", ["XYZ", "usd", "", "EURO", None])
def test_unknown_currency_is_a_clear_error(currency: object) -> None:
    with pytest.raises(UnknownCurrency, match="unknown currency"):
        exponent(currency)  # type: ignore[arg-type]
    with pytest.raises(UnknownCurrency):
        Money(100, currency)  # type: ignore[arg-type]
    assert issubclass(UnknownCurrency, InvalidInput)


@pytest.mark.parametrize("amount", [1.5, True, "100", Decimal(1)])
def test_money_is_whole_minor_units(amount: object) -> None:
    with pytest.raises(InvalidInput, match="int of minor units"):
        Money(amount, "USD")  # type: ignore[arg-type]


def test_never_from_a_float() -> None:
    with pytest.raises(InvalidInput, match="float"):
        Money.from_major(19.99, "USD", rounding=Rounding.HALF_EVEN)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="float"):
        Money(100, "USD").times(1.5, rounding=Rounding.HALF_EVEN)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="float"):
        convert(Money(100, "USD"), "EUR", 0.9, rounding=Rounding.HALF_EVEN)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        to_minor(1.5, rounding=Rounding.HALF_EVEN)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("major", "currency", "rounding", "minor"),
    [
        ("19.99", "USD", Rounding.HALF_EVEN, 1999),
        ("0.125", "USD", Rounding.HALF_EVEN, 12),
        ("0.135", "USD", Rounding.HALF_EVEN, 14),
        ("0.125", "USD", Rounding.HALF_UP, 13),
        ("0.121", "USD", Rounding.UP, 13),
        ("0.129", "USD", Rounding.DOWN, 12),
        ("-0.125", "USD", Rounding.HALF_UP, -13),
        ("-0.121", "USD", Rounding.UP, -12),
        ("-0.121", "USD", Rounding.DOWN, -13),
        ("-0.129", "USD", Rounding.TRUNCATE, -12),
        ("100.5", "JPY", Rounding.HALF_EVEN, 100),
        ("101.5", "JPY", Rounding.HALF_EVEN, 102),
        ("1.2345", "KWD", Rounding.HALF_EVEN, 1234),
        ("1.2345", "KWD", Rounding.HALF_UP, 1235),
        ("7", "ISK", Rounding.HALF_EVEN, 7),
    ],
)
def test_from_major_rounds_as_named(
    major: str, currency: str, rounding: Rounding, minor: int
) -> None:
    assert Money.from_major(major, currency, rounding=rounding) == Money(minor, currency)


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money(1999, "USD"), "19.99 USD"),
        (Money(5, "KWD"), "0.005 KWD"),
        (Money(100, "JPY"), "100 JPY"),
        (Money(-250, "EUR"), "-2.50 EUR"),
    ],
)
def test_major_units_and_text(money: Money, text: str) -> None:
    assert str(money) == text
    assert Money.from_major(money.to_major(), money.currency, rounding=Rounding.HALF_EVEN) == money


def test_arithmetic_keeps_the_currency() -> None:
    assert Money(150, "EUR") + Money(50, "EUR") == Money(200, "EUR")
    assert Money(150, "EUR") - Money(200, "EUR") == Money(-50, "EUR")
    assert -Money(5, "EUR") == Money(-5, "EUR")
    assert Money(1, "EUR") < Money(2, "EUR") and Money(2, "EUR") <= Money(2, "EUR")
    with pytest.raises(InvalidInput, match="currency mismatch"):
        Money(1, "EUR") + Money(1, "USD")
    with pytest.raises(InvalidInput, match="currency mismatch"):
        _ = Money(1, "EUR") < Money(1, "USD")


def test_basis_points() -> None:
    assert Money(10_000, "USD").bps(150, rounding=Rounding.HALF_UP) == Money(150, "USD")
    assert Money(4000, "USD").bps(5, rounding=Rounding.HALF_UP) == Money(2, "USD")
    assert Money(333, "USD").bps(15, rounding=Rounding.HALF_UP) == Money(0, "USD")  # 0.4995
    assert Money(333, "USD").bps(15, rounding=Rounding.UP) == Money(1, "USD")
    assert Money(1000, "USD").bps(Decimal("12.5"), rounding=Rounding.HALF_EVEN) == Money(1, "USD")


@pytest.mark.parametrize(
    ("money", "target", "rate", "expected"),
    [
        (Money(1000, "JPY"), "USD", "0.0067", Money(670, "USD")),  # 0 -> 2 decimals
        (Money(670, "USD"), "JPY", "149.25", Money(1000, "JPY")),  # 2 -> 0
        (Money(10_000, "USD"), "KWD", "0.3071", Money(30_710, "KWD")),  # 2 -> 3
        (Money(1, "KWD"), "USD", "3.256", Money(0, "USD")),  # 0.003256 USD
        (Money(5, "KWD"), "USD", "3.256", Money(2, "USD")),  # 0.01628 USD
    ],
)
def test_convert_respects_both_exponents(
    money: Money, target: str, rate: str, expected: Money
) -> None:
    assert convert(money, target, rate, rounding=Rounding.HALF_EVEN) == expected


def test_convert_rejects_bad_rates_and_currencies() -> None:
    with pytest.raises(InvalidInput, match="positive"):
        convert(Money(1, "USD"), "EUR", "0", rounding=Rounding.HALF_EVEN)
    with pytest.raises(UnknownCurrency):
        convert(Money(1, "USD"), "XXX", "1", rounding=Rounding.HALF_EVEN)


def test_exchange_rates_cross_through_the_base() -> None:
    rates = ExchangeRates("USD", {"EUR": Decimal("0.9"), "GBP": Decimal("0.75"), "JPY": 150})
    assert rates.rate("EUR", "GBP") == Decimal("0.75") / Decimal("0.9")
    assert rates.convert(Money(900, "EUR"), "USD", rounding=Rounding.HALF_EVEN) == Money(
        1000, "USD"
    )
    assert rates.convert(Money(1000, "USD"), "JPY", rounding=Rounding.HALF_EVEN) == Money(
        1500, "JPY"
    )
    with pytest.raises(InvalidInput, match="no exchange rate for CHF"):
        rates.rate("USD", "CHF")
    with pytest.raises(InvalidInput, match="Decimal"):
        ExchangeRates("USD", {"EUR": 0.9})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput, match="positive"):
        ExchangeRates("USD", {"EUR": Decimal(0)})
    with pytest.raises(UnknownCurrency):
        ExchangeRates("USD", {"EUX": Decimal(1)})


@given(
    amount=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(sorted(EXPONENTS)),
)
def test_major_round_trip_is_exact(amount: int, currency: str) -> None:
    money = Money(amount, currency)
    for rounding in Rounding:
        assert Money.from_major(money.to_major(), currency, rounding=rounding) == money


@given(
    amount=st.integers(min_value=0, max_value=10**12),
    bps=st.integers(min_value=0, max_value=10_000),
)
def test_rounding_modes_bracket_the_exact_value(amount: int, bps: int) -> None:
    exact = Decimal(amount) * bps / 10_000
    down = Money(amount, "USD").bps(bps, rounding=Rounding.DOWN).amount_minor
    up = Money(amount, "USD").bps(bps, rounding=Rounding.UP).amount_minor
    half = Money(amount, "USD").bps(bps, rounding=Rounding.HALF_EVEN).amount_minor
    assert down <= exact <= up and up - down <= 1
    assert down <= half <= up and abs(half - exact) <= Decimal("0.5")
