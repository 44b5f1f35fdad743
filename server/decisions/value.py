"""What an attempt is worth on each route: the payments core's costs and expected net value,

    E[net | r] = p_r * (value * discount - approval cost_r - expected fraud loss_r) - attempt cost_r

priced once per authorization and route, then applied to every probability the models give
(the routes now, and retries later, whose value is discounted by their delay).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from forestgate.payments.economics import CardProfile, expected_fraud_loss, expected_net_value
from forestgate.payments.money import ExchangeRates, Money, Rounding
from forestgate.payments.pricing import RoutePricer
from forestgate.payments.routetable import RouteTable
from forestgate.server.decisions.authorization import Authorization
from forestgate.server.decisions.reference_data import ReferenceData

# A recovered payment is worth a little less the later it lands (cash flow, churn): 0.5% a day,
# the discount the trainer's policy replay uses too.
DISCOUNT_PER_DAY = 0.005
DAY_S = 86_400
EXACT_MARGIN = 2**29  # minor units; beyond it, the reference's Decimal arithmetic


@dataclass(frozen=True, slots=True)
class Economics:
    """How value turns into money for one authorization."""

    default_margin: float  # approval value as a share of the amount when the switch sends none
    fraud_rate: float  # p(fraud | approved) without a fraud model
    chargeback_fee_usd: float


class RoutePrice(NamedTuple):
    """One route's costs for one authorization (a NamedTuple: built per route per Score, where
    a frozen dataclass costs twice as much; see payments.counts.RouteCounts)."""

    route_id: str
    approval_cost_minor: int
    attempt_cost_minor: int
    fraud_loss_minor: int

    def net(self, p_approve: float, value_minor: int, delay_s: int = 0) -> int:
        """``economics.expected_net_value`` of this route, half-even to the minor unit, in
        binary floating point: p is a float32 model output (24 significant bits), so times a
        margin under 2**29 minor units the product is exact in a double and the rounding is the
        reference's (tests/server/test_decision_value.py checks it)."""
        value = value_minor  # now: undiscounted, and exact past a double's 53 bits
        if delay_s:
            value = round(value_minor * max(0.0, 1.0 - DISCOUNT_PER_DAY * delay_s / DAY_S))
        p = min(max(p_approve, 0.0), 1.0)
        margin = value - self.approval_cost_minor - self.fraud_loss_minor
        if abs(margin) >= EXACT_MARGIN:
            return expected_net_value(
                p, value, self.approval_cost_minor, self.fraud_loss_minor, self.attempt_cost_minor
            )
        return round(p * margin - self.attempt_cost_minor)


def exchange_rates(world: ReferenceData) -> ExchangeRates:
    """USD-based mid rates from the reference data (USD per unit, inverted)."""
    per_usd = {c: Decimal(1) / Decimal(str(v)) for c, v in world.usd_per_unit.items() if v > 0}
    per_usd.pop("USD", None)
    return ExchangeRates("USD", per_usd)


def card_profile(auth: Authorization) -> CardProfile:
    card = auth.card
    kind = "commercial" if card.commercial else card.funding
    return CardProfile(network=card.brand, card_type=kind, issuer_country=card.issuer_country)


def approval_value(auth: Authorization, economics: Economics) -> int:
    if auth.approval_value_minor is not None:
        return auth.approval_value_minor
    return round(auth.amount.amount_minor * economics.default_margin)


class Pricing:
    """Prices an authorization's routes at one set of exchange rates (one approval model's
    reference data): costs from the route table, expected fraud loss from the economics."""

    def __init__(self, table: RouteTable, rates: ExchangeRates, economics: Economics) -> None:
        self.pricer = RoutePricer(table, rates)
        self.rates = rates
        self.economics = economics
        self._chargeback: dict[str, int] = {}
        # The float's exact binary value, as expected_fraud_loss would convert it on every call.
        self._p_fraud = Decimal(economics.fraud_rate)
        # A card's profile is checked once per (network, type, issuer country), not per Score:
        # a few dozen in practice, a few thousand at most (issuer countries are two capitals).
        self._profiles: dict[tuple[str, str, str], CardProfile] = {}

    def routes(self, auth: Authorization, route_ids: tuple[str, ...]) -> Mapping[str, RoutePrice]:
        """Each route's costs (InvalidInput if a route refuses the card)."""
        card = self._profile(auth)
        amount_minor, currency = auth.amount.amount_minor, auth.amount.currency
        fee = self._chargeback_fee(currency)
        loss = 0  # authenticated with 3DS: the issuer carries the fraud liability
        if not auth.three_ds:
            loss = expected_fraud_loss(self._p_fraud, amount_minor, fee, merchant_liable=True)
        prices = {}
        for route_id in route_ids:
            schedule = self.pricer.schedule(route_id, currency, card)
            approval = schedule.approval_minor(amount_minor)
            prices[route_id] = RoutePrice(route_id, approval, schedule.attempt_minor, loss)
        return prices

    def _profile(self, auth: Authorization) -> CardProfile:
        card = auth.card
        key = (card.brand, "commercial" if card.commercial else card.funding, card.issuer_country)
        profile = self._profiles.get(key)
        if profile is None:
            profile = self._profiles[key] = card_profile(auth)
        return profile

    def _chargeback_fee(self, currency: str) -> int:
        fee = self._chargeback.get(currency)
        if fee is None:
            usd = Money.from_major(
                str(self.economics.chargeback_fee_usd), "USD", rounding=Rounding.HALF_UP
            )
            fee = self.rates.convert(usd, currency, rounding=Rounding.HALF_UP).amount_minor
            self._chargeback[currency] = fee
        return fee
