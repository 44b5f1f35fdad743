"""Route costs on the hot path: the same figures as ``economics.cost_breakdown``, to the minor
unit, without building a Money for every component.

``cost_breakdown`` is the reference: readable, one Money per fee, checked at every step. Pricing
six routes with it costs about 180 us, most of it in Money objects. ``RoutePricer`` keeps each
fee's basis points as an exact integer fraction, converts each fixed fee once per currency (a fee
in the route's settlement currency, at the pricer's rates, is a constant), and rounds every
component on its own, half up, in integers, exactly as the statement does;
tests/payments/test_pricing.py checks equality with the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from forestgate.errors import InvalidInput
from forestgate.payments.economics import COST_ROUNDING, CardProfile
from forestgate.payments.money import ExchangeRates, Money, check_currency
from forestgate.payments.routetable import CardType, Fee, Relation, RouteCost, RouteTable


@dataclass(frozen=True, slots=True)
class Price:
    """What an attempt costs on one route, in the amount's minor units."""

    approval_minor: int  # interchange + scheme fee + acquirer markup + FX, when approved
    attempt_minor: int  # the per-attempt fee, whatever the answer


class RoutePricer:
    """Prices attempts on a route table at fixed exchange rates."""

    def __init__(self, table: RouteTable, rates: ExchangeRates | None = None) -> None:
        self.table = table
        self.rates = rates
        self._fixed: dict[tuple[int, str, str], int] = {}
        self._schedules: dict[tuple[str, object, object, str], Schedule] = {}

    def price(self, route_id: str, amount_minor: int, currency: str, card: CardProfile) -> Price:
        """The cost of sending ``amount_minor`` of ``currency`` for ``card`` on the route;
        InvalidInput as ``cost_breakdown`` raises it (ineligible card, missing rates)."""
        schedule = self.schedule(route_id, currency, card)
        if amount_minor < 0:
            raise InvalidInput(f"amount_minor must be >= 0, got {amount_minor}")
        return Price(schedule.approval_minor(amount_minor), schedule.attempt_minor)

    def schedule(self, route_id: str, currency: str, card: CardProfile) -> Schedule:
        """What the route charges ``card`` in ``currency``, for any amount: ``price`` without
        its Price, for a caller that prices many routes and keeps its own record of each."""
        route = self.table[route_id]
        if not route.eligible(card):
            raise InvalidInput(
                f"route {route.route_id} does not accept {card.network} {card.card_type} cards"
            )
        relation = route.relation(card)
        key = (route_id, relation, card.card_type, currency)
        schedule = self._schedules.get(key)
        if schedule is None:
            check_currency(currency)
            schedule = self._schedules[key] = self._schedule(route, relation, card, currency)
        return schedule

    def _schedule(
        self, route: RouteCost, relation: Relation, card: CardProfile, currency: str
    ) -> Schedule:
        """A route's fees for one kind of card and presentment currency: the rates that apply
        to the amount, and the fixed parts, each converted and rounded on its own."""
        fees = (
            route.interchange[relation][CardType(card.card_type)],
            route.scheme_fee[relation],
            route.acquirer_markup,
        )
        rates = [_Rate.of_fee(fee) for fee in fees]
        if currency != route.settlement_currency:
            rates.append(_Rate.of_fee(Fee(route.fx_spread_bps)))
        fixed = sum(self._convert(route, fee.fixed_minor, currency) for fee in fees)
        attempt = self._convert(route, route.per_attempt_fee_minor, currency)
        return Schedule(tuple(rates), fixed, attempt)

    def _convert(self, route: RouteCost, fixed_minor: int, currency: str) -> int:
        """A fixed fee of the route's settlement currency in ``currency``, once per pair."""
        if fixed_minor == 0 or currency == route.settlement_currency:
            return fixed_minor
        key = (fixed_minor, route.settlement_currency, currency)
        converted = self._fixed.get(key)
        if converted is None:
            if self.rates is None:
                raise InvalidInput(
                    f"route {route.route_id} charges fixed fees in {route.settlement_currency}; "
                    f"pricing a {currency} amount needs exchange rates"
                )
            money = Money(fixed_minor, route.settlement_currency)
            converted = self.rates.convert(money, currency, rounding=COST_ROUNDING).amount_minor
            self._fixed[key] = converted
        return converted


@dataclass(frozen=True, slots=True)
class Schedule:
    """A route's fees for one kind of card in one presentment currency."""

    rates: tuple[_Rate, ...]  # applied to the amount, each rounded on its own
    fixed_minor: int  # the fixed parts of the approval fees, in the presentment currency
    attempt_minor: int

    def approval_minor(self, amount_minor: int) -> int:
        """What an approval of ``amount_minor`` (>= 0) costs, every component rounded."""
        approval = self.fixed_minor
        for rate in self.rates:
            approval += rate.of(amount_minor)
        return approval


@dataclass(frozen=True, slots=True)
class _Rate:
    """A fee's basis points as an exact fraction, and its fixed part."""

    numerator: int
    denominator: int  # of the share of the amount: bps / 10,000
    fixed_minor: int

    @classmethod
    def of_fee(cls, fee: Fee) -> _Rate:
        numerator, denominator = Decimal(fee.bps).as_integer_ratio()
        return cls(numerator, denominator * 10_000, fee.fixed_minor)

    def of(self, amount_minor: int) -> int:
        """amount x bps / 10,000 rounded half up (amount >= 0), in integers."""
        twice = 2 * amount_minor * self.numerator + self.denominator
        return twice // (2 * self.denominator)
