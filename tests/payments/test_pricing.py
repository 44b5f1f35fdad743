"""The hot path's pricer against the reference: for any route, amount, currency and card, the
same approval and attempt costs as economics.cost_breakdown, to the minor unit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forestgate.errors import InvalidInput
from forestgate.payments.economics import CardProfile, cost_breakdown
from forestgate.payments.money import ExchangeRates, Money
from forestgate.payments.pricing import RoutePricer
from forestgate.payments.routetable import RouteTable

TABLE = RouteTable.load()
RATES = ExchangeRates(
    "USD",
    {"EUR": Decimal("0.92"), "GBP": Decimal("0.79"), "BRL": Decimal("5.5"), "JPY": Decimal("149"),
     "KWD": Decimal("0.31"), "MXN": Decimal("18.2")},
)  # fmt: skip
CURRENCIES = ("USD", *sorted(c for c in RATES.per_base if c != "USD"))
PRICER = RoutePricer(TABLE, RATES)


@settings(max_examples=400, deadline=None)
@given(
    route=st.sampled_from([r.route_id for r in TABLE]),
    amount=st.integers(0, 10**9),
    currency=st.sampled_from(CURRENCIES),
    card=st.builds(
        CardProfile,
        st.sampled_from(["visa", "mastercard"]),
        st.sampled_from(["debit", "credit", "prepaid", "commercial"]),
        st.sampled_from(["US", "GB", "DE", "BR", "JP", "MX"]),
    ),
)
def test_the_pricer_equals_the_reference(
    route: str, amount: int, currency: str, card: CardProfile
) -> None:
    try:
        reference = cost_breakdown(TABLE[route], Money(amount, currency), card, rates=RATES)
    except InvalidInput as refused:
        with pytest.raises(InvalidInput, match=str(refused)):
            PRICER.price(route, amount, currency, card)
        return
    price = PRICER.price(route, amount, currency, card)
    assert price.approval_minor == reference.approval_cost.amount_minor
    assert price.attempt_minor == reference.attempt_cost.amount_minor


def test_a_foreign_amount_without_rates_is_refused_like_the_reference() -> None:
    card = CardProfile("visa", "credit", "US")
    with pytest.raises(InvalidInput, match="needs exchange rates"):
        RoutePricer(TABLE).price("A-US", 1_000, "EUR", card)
