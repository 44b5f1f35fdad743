"""Route economics: the route cost table, cost components, expected net value and ranking."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forestgate.errors import InvalidInput, NotFound
from forestgate.payments.economics import (
    CardProfile,
    CardType,
    Relation,
    RouteTable,
    approval_cost,
    attempt_cost,
    cost_breakdown,
    expected_fraud_loss,
    expected_net_value,
    rank_routes,
)
from forestgate.payments.errors import ConfigError
from forestgate.payments.money import ExchangeRates, Money
from tests.payments.factory import ROUTES, edited, line_of

RATES = ExchangeRates(
    "USD", {"EUR": Decimal("0.92"), "GBP": Decimal("0.79"), "BRL": Decimal("5.4")}
)
FR_CREDIT = CardProfile("visa", "credit", "FR")
US_DEBIT = CardProfile("mastercard", "debit", "US")


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return RouteTable.load()


# -- the table file --------------------------------------------------------------------------------


def test_the_packaged_table(table: RouteTable) -> None:
    assert table.version == "2025.05.1"
    assert [r.route_id for r in table] == ["A-US", "A-EU", "B-GB", "C-BR", "D-XB", "E-US-DEBIT"]
    assert len(table) == 6
    assert table["A-EU"].settlement_currency == "EUR"
    assert "FR" in table["A-EU"].local_countries
    assert not table["D-XB"].local_countries  # every card is cross-border there
    with pytest.raises(NotFound, match="unknown route 'Z-9'"):
        table["Z-9"]


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        RouteTable.load(path)
    return caught.value


@pytest.mark.parametrize(
    "case",
    [
        (r"acquirer_markup: \{bps: 20,", "acquirer_markup: {bps: -20,", "bps: -20",
         "routes[0].acquirer_markup.bps", "cost must be >= 0, got -20"),
        (r"credit: \{bps: 180, fixed_minor: 10\}", "credit: {bps: 180, fixed_minor: -10}",
         "fixed_minor: -10", "routes[0].interchange.local.credit.fixed_minor", "got -10"),
        (r"per_attempt_fee_minor: 2\n", "per_attempt_fee_minor: -1\n", "per_attempt_fee_minor: -1",
         "routes[0].per_attempt_fee_minor", "must be >= 0"),
        (r"fx_spread_bps: 100 ", "fx_spread_bps: -0.5 ", "fx_spread_bps: -0.5",
         "routes[0].fx_spread_bps", "must be >= 0"),
        (r"settlement_currency: USD", "settlement_currency: USX", "settlement_currency: USX",
         "routes[0].settlement_currency", "unknown currency 'USX'"),
        (r"    fx_spread_bps: 100 ", "    fx_spreed_bps: 1\n    fx_spread_bps: 100 ",
         "fx_spreed_bps", "routes[0].fx_spreed_bps", "unknown field 'fx_spreed_bps'"),
        (r"  - id: A-EU", "  - id: A-US", "id: A-US\n", "routes[1]", "listed twice"),
        (r"country: GB", "country: UK1", "country: UK1", "routes[2].country", "ISO 3166"),
        (r"        prepaid: \{bps: 80, fixed_minor: 15\}.*\n", "", "      local:",
         "routes[0].interchange.local", "missing field 'prepaid'"),
        (r"fixed_minor: 22\}", "fixed_minor: 22.5}", "fixed_minor: 22.5",
         "routes[0].interchange.local.debit.fixed_minor", "whole minor units"),
        (r"card_types: \[debit, prepaid\]", "card_types: [debit, gold]",
         "card_types: [debit, gold]", "routes[5].card_types[1]", "unknown CardType 'gold'"),
        (r"bps: 13\}", "bps: lots}", "bps: lots", "routes[0].scheme_fee.local.bps",
         "expected a number"),
    ],
)  # fmt: skip
def test_bad_tables_name_file_line_and_field(
    tmp_path: Path, case: tuple[str, str, str, str, str]
) -> None:
    pattern, replacement, needle, field, message = case
    path = edited(tmp_path, ROUTES, (pattern, replacement), name="routes.yaml")
    error = load_error(path)
    assert error.path == path
    assert error.field == field, str(error)
    assert message in str(error)
    if needle.endswith("\n"):
        # The duplicate: the second route's entry.
        lines = [
            n for n, text in enumerate(path.read_text().splitlines(), 1) if needle[:-1] in text
        ]
        assert error.line == lines[1]
    else:
        assert error.line == line_of(path, needle), str(error)
    assert str(error).startswith(f"{path}:{error.line}: {field}: ")


# -- costs -----------------------------------------------------------------------------------------


def test_local_eea_credit_costs(table: RouteTable) -> None:
    costs = cost_breakdown(table["A-EU"], Money(10_000, "EUR"), FR_CREDIT)
    assert costs.relation is Relation.LOCAL
    assert costs.interchange == Money(30, "EUR")  # IFR 0.3% credit
    assert costs.scheme_fee == Money(14, "EUR")
    assert costs.acquirer_markup == Money(20, "EUR")  # 0.15% + 0.05
    assert costs.fx == Money(0, "EUR")
    assert costs.per_attempt == Money(2, "EUR")
    assert costs.approval_cost == Money(64, "EUR")
    assert costs.attempt_cost == Money(2, "EUR")
    assert costs.total == Money(66, "EUR")
    assert approval_cost(table["A-EU"], Money(10_000, "EUR"), FR_CREDIT) == Money(64, "EUR")
    assert attempt_cost(table["A-EU"], Money(10_000, "EUR"), FR_CREDIT) == Money(2, "EUR")


def test_us_regulated_debit_is_21_cents_plus_5_bps_plus_1_cent(table: RouteTable) -> None:
    costs = cost_breakdown(table["A-US"], Money(4000, "USD"), US_DEBIT)
    assert costs.interchange == Money(24, "USD")  # $40 -> 24c, docs/payments.md, "Route costs"


def test_cross_border_costs_more_and_fx_applies_only_on_conversion(table: RouteTable) -> None:
    local = cost_breakdown(table["A-EU"], Money(10_000, "EUR"), FR_CREDIT)
    foreign = cost_breakdown(table["A-US"], Money(10_000, "EUR"), FR_CREDIT, rates=RATES)
    assert foreign.relation is Relation.CROSS_BORDER
    assert foreign.interchange.amount_minor > local.interchange.amount_minor
    assert foreign.scheme_fee == Money(133, "EUR")  # 0.13 + 0.80 + 0.40%
    assert foreign.fx == Money(100, "EUR")  # presentment EUR, settlement USD: 1%
    assert cost_breakdown(table["A-US"], Money(10_000, "USD"), FR_CREDIT).fx == Money(0, "USD")


def test_fixed_fees_are_converted_from_the_settlement_currency(table: RouteTable) -> None:
    route = table["A-US"]  # markup 0.20% + 5 US cents
    costs = cost_breakdown(route, Money(10_000, "EUR"), FR_CREDIT, rates=RATES)
    assert costs.acquirer_markup == Money(20 + 5, "EUR")  # 5 US cents at 0.92 = 4.6 -> 5
    assert costs.per_attempt == Money(2, "EUR")  # 1.84 -> 2
    with pytest.raises(InvalidInput, match="needs exchange rates"):
        cost_breakdown(route, Money(10_000, "EUR"), FR_CREDIT)


def test_zero_exponent_currency(table: RouteTable) -> None:
    rates = ExchangeRates("USD", {"JPY": Decimal(150)})
    card = CardProfile("visa", "debit", "JP")
    costs = cost_breakdown(table["D-XB"], Money(15_000, "JPY"), card, rates=rates)
    assert costs.interchange == Money(225, "JPY")  # 1.50% of 15,000 yen
    assert costs.per_attempt == Money(2, "JPY")  # 1 US cent = 1.5 yen -> 2 (half-up)


def test_ineligible_cards_are_refused(table: RouteTable) -> None:
    credit = CardProfile("visa", "credit", "US")
    assert not table["E-US-DEBIT"].eligible(credit)
    assert table["E-US-DEBIT"] not in table.eligible(credit)
    with pytest.raises(InvalidInput, match="does not accept visa credit"):
        cost_breakdown(table["E-US-DEBIT"], Money(1000, "USD"), credit)
    amex = CardProfile("amex", "credit", "US")
    assert [r.route_id for r in table.eligible(amex)] == ["A-US"]
    with pytest.raises(InvalidInput, match="card_type"):
        CardProfile("visa", "gold", "US")
    assert CardProfile("visa", "debit", "US").card_type is CardType.DEBIT


# -- expected net value and ranking ----------------------------------------------------------------


def test_expected_net_value_follows_the_domain_formula() -> None:
    # p * (value - approval costs - fraud loss) - attempt cost
    assert expected_net_value(0.9, 3000, 100, 50, 2) == 2563  # 0.9 * 2850 - 2 = 2563
    assert expected_net_value(Decimal("0.5"), 1001, 0, 0, 0) == 500  # 500.5 -> even
    assert expected_net_value(Decimal("0.5"), 1003, 0, 0, 0) == 502  # 501.5 -> even
    assert expected_net_value(0, 3000, 100, 50, 2) == -2
    assert expected_net_value(1, 3000, 100, 50, 2) == 2848


@pytest.mark.parametrize("p", [-0.01, 1.01, float("nan"), float("inf"), True, "0.5"])
def test_expected_net_value_rejects_bad_probabilities(p: object) -> None:
    with pytest.raises(InvalidInput):
        expected_net_value(p, 3000, 100, 50, 2)  # type: ignore[arg-type]


def test_expected_net_value_rejects_float_money() -> None:
    with pytest.raises(InvalidInput, match="minor units"):
        expected_net_value(0.5, 30.0, 1, 1, 1)  # type: ignore[arg-type]


def test_expected_fraud_loss() -> None:
    assert expected_fraud_loss(0.001, 10_000, 2000, merchant_liable=True) == 12
    assert expected_fraud_loss(0.001, 10_000, 2000, merchant_liable=False) == 0


def test_local_route_wins_at_equal_approval(table: RouteTable) -> None:
    ranked = rank_routes(
        table,
        Money(10_000, "EUR"),
        FR_CREDIT,
        {"A-EU": 0.9, "D-XB": 0.9, "A-US": 0.9},
        value_minor=3000,
        rates=RATES,
    )
    assert [v.route_id for v in ranked] == ["A-EU", "D-XB", "A-US"]
    best = ranked[0]
    assert best.net_value_minor == expected_net_value(
        0.9, 3000, best.costs.approval_cost.amount_minor, 0, best.costs.attempt_cost.amount_minor
    )


def test_a_much_likelier_approval_beats_cheaper_costs(table: RouteTable) -> None:
    ranked = rank_routes(
        table,
        Money(10_000, "EUR"),
        FR_CREDIT,
        {"A-EU": 0.70, "D-XB": 0.95},
        value_minor=3000,
        fraud_loss_minor={"A-EU": 10, "D-XB": 30},
        rates=RATES,
    )
    assert ranked[0].route_id == "D-XB"
    assert ranked[0].expected_fraud_loss_minor == 30


def test_ranking_ties_break_by_route_id(table: RouteTable) -> None:
    ranked = rank_routes(
        table, Money(0, "USD"), US_DEBIT, {"E-US-DEBIT": 0, "A-US": 0}, value_minor=0
    )
    assert [v.route_id for v in ranked] == ["E-US-DEBIT", "A-US"]  # -1 beats -2 per attempt
    tied = rank_routes(
        table, Money(0, "USD"), US_DEBIT, {"D-XB": 0, "E-US-DEBIT": 0}, value_minor=0
    )
    assert [v.route_id for v in tied] == ["D-XB", "E-US-DEBIT"]
    with pytest.raises(NotFound):
        rank_routes(table, Money(0, "USD"), US_DEBIT, {"nope": 0.5}, value_minor=0)


@given(
    p_low=st.floats(min_value=0, max_value=1),
    p_high=st.floats(min_value=0, max_value=1),
    value=st.integers(min_value=0, max_value=10**9),
    costs=st.integers(min_value=0, max_value=10**6),
    attempt=st.integers(min_value=0, max_value=100),
)
def test_net_value_grows_with_approval_when_the_margin_is_positive(
    p_low: float, p_high: float, value: int, costs: int, attempt: int
) -> None:
    low, high = sorted((p_low, p_high))
    v_low = expected_net_value(low, value, costs, 0, attempt)
    v_high = expected_net_value(high, value, costs, 0, attempt)
    if value >= costs:
        assert v_low <= v_high
    else:
        assert v_low >= v_high
    assert -attempt - abs(value - costs) - 1 <= v_low <= abs(value - costs)
