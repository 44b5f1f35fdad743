"""What an attempt costs and an approval is worth, priced as the server prices routes: the route
cost table (payments/routes.yaml) through ``economics.cost_breakdown``, with the generator's
exchange rates for fixed fees in another currency."""

from __future__ import annotations

from forestgate.clients.simulate.dataset import Payment
from forestgate.payments.economics import CardProfile, CostBreakdown, RouteTable, cost_breakdown
from forestgate.payments.money import ExchangeRates, Money
from forestgate.training.generator.world import exchange_rates


def card_profile(payment: Payment) -> CardProfile:
    row = payment.row
    card_type = "commercial" if row["is_commercial"] else str(row["funding"])
    return CardProfile(str(row["brand"]), card_type, str(row["issuer_country"]))


class Pricing:
    """Costs per (payment, route) in the payment's currency, and their value in USD."""

    def __init__(self, table: RouteTable | None = None, rates: ExchangeRates | None = None) -> None:
        self.table = RouteTable.load() if table is None else table
        self.rates = exchange_rates() if rates is None else rates
        self._costs: dict[tuple[int, str], CostBreakdown] = {}

    def costs(self, payment: Payment, route_id: str) -> CostBreakdown:
        key = (payment.index, route_id)
        if key not in self._costs:
            amount = Money(int(payment.row["amount_minor"]), str(payment.row["currency"]))
            route = self.table[route_id]
            card = card_profile(payment)
            self._costs[key] = cost_breakdown(route, amount, card, rates=self.rates)
        return self._costs[key]

    @staticmethod
    def value_minor(payment: Payment) -> int:
        """The value of an approval to the merchant: amount x gross margin, as the generator's
        ``merchant_value`` (rounded half to even)."""
        return round(int(payment.row["amount_minor"]) * payment.gross_margin)

    @staticmethod
    def usd(payment: Payment, minor: int) -> float:
        """``minor`` units of the payment's currency in USD, at the rate its amount was drawn."""
        amount = int(payment.row["amount_minor"])
        return minor * float(payment.row["amount_usd"]) / max(amount, 1)
