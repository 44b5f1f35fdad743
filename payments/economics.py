"""Route economics: what an authorization attempt costs on each acquirer route, read from a route
cost table, and the expected net value that ranks the routes (DOMAIN.md)::

    E[net | r] = p_r * (value - approval costs_r - expected fraud loss_r) - attempt cost_r

Approval costs (interchange, scheme fees, acquirer markup, FX spread) are paid on approved,
cleared payments; the attempt cost (per-attempt fee) on every attempt. Costs come from the table,
never from a model. Money is integer minor units; rates are Decimals; rounding is named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from forestgate.errors import InvalidInput
from forestgate.payments.money import ExchangeRates, Money, Rounding
from forestgate.payments.routetable import (
    CardProfile,
    CardType,
    Fee,
    Relation,
    RouteCost,
    RouteTable,
    default_routes_path,
)

__all__ = [
    "COST_ROUNDING",
    "VALUE_ROUNDING",
    "CardProfile",
    "CardType",
    "CostBreakdown",
    "Fee",
    "Relation",
    "RouteCost",
    "RouteTable",
    "RouteValue",
    "approval_cost",
    "attempt_cost",
    "cost_breakdown",
    "default_routes_path",
    "expected_fraud_loss",
    "expected_net_value",
    "rank_routes",
]

# Each fee component is rounded on its own, as an acquirer's statement prints it.
COST_ROUNDING = Rounding.HALF_UP
# Expected values are estimates, not charges: unbiased rounding.
VALUE_ROUNDING = Rounding.HALF_EVEN


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """The cost components of one attempt on one route, in the transaction's currency."""

    route_id: str
    relation: Relation
    interchange: Money
    scheme_fee: Money
    acquirer_markup: Money
    fx: Money
    per_attempt: Money

    @property
    def approval_cost(self) -> Money:
        """Paid only when the attempt is approved and cleared."""
        return self.interchange + self.scheme_fee + self.acquirer_markup + self.fx

    @property
    def attempt_cost(self) -> Money:
        """Paid on every attempt, approved or declined."""
        return self.per_attempt

    @property
    def total(self) -> Money:
        """The cost of an approved attempt."""
        return self.approval_cost + self.per_attempt


def cost_breakdown(
    route: RouteCost, amount: Money, card: CardProfile, *, rates: ExchangeRates | None = None
) -> CostBreakdown:
    """Every cost component of sending ``amount`` for ``card`` on ``route``, in amount's currency.

    Fixed fees are in the route's settlement currency and are converted with ``rates`` when the
    amount is in another currency (InvalidInput if ``rates`` is then missing).
    """
    if not route.eligible(card):
        raise InvalidInput(
            f"route {route.route_id} does not accept {card.network} {card.card_type} cards"
        )
    relation = route.relation(card)
    fx_needed = amount.currency != route.settlement_currency

    def fixed(minor: int) -> Money:
        if minor == 0:
            return Money(0, amount.currency)
        money = Money(minor, route.settlement_currency)
        if not fx_needed:
            return money
        if rates is None:
            raise InvalidInput(
                f"route {route.route_id} charges fixed fees in {route.settlement_currency}; "
                f"pricing a {amount.currency} amount needs exchange rates"
            )
        return rates.convert(money, amount.currency, rounding=COST_ROUNDING)

    def fee(schedule: Fee) -> Money:
        return amount.bps(schedule.bps, rounding=COST_ROUNDING) + fixed(schedule.fixed_minor)

    fx = (
        amount.bps(route.fx_spread_bps, rounding=COST_ROUNDING)
        if fx_needed
        else Money(0, amount.currency)
    )
    return CostBreakdown(
        route_id=route.route_id,
        relation=relation,
        interchange=fee(route.interchange[relation][CardType(card.card_type)]),
        scheme_fee=fee(route.scheme_fee[relation]),
        acquirer_markup=fee(route.acquirer_markup),
        fx=fx,
        per_attempt=fixed(route.per_attempt_fee_minor),
    )


def attempt_cost(
    route: RouteCost, amount: Money, card: CardProfile, *, rates: ExchangeRates | None = None
) -> Money:
    """What one attempt costs on ``route`` whatever the answer (the per-attempt fee)."""
    return cost_breakdown(route, amount, card, rates=rates).attempt_cost


def approval_cost(
    route: RouteCost, amount: Money, card: CardProfile, *, rates: ExchangeRates | None = None
) -> Money:
    """What an approved attempt costs on top: interchange + scheme fee + markup + FX spread."""
    return cost_breakdown(route, amount, card, rates=rates).approval_cost


def _probability(p: float | Decimal, what: str) -> Decimal:
    if isinstance(p, bool) or not isinstance(p, float | int | Decimal):
        raise InvalidInput(f"{what} must be a number, got {type(p).__name__}")
    if isinstance(p, float) and not math.isfinite(p):
        raise InvalidInput(f"{what} must be finite, got {p}")
    value = Decimal(p)  # exact: a float's binary value, no decimal-text guess
    if not Decimal(0) <= value <= Decimal(1):
        raise InvalidInput(f"{what} must be in [0, 1], got {p}")
    return value


def _minor(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an int of minor units, got {type(value).__name__}")
    return value


def expected_fraud_loss(
    p_fraud: float | Decimal, amount_minor: int, chargeback_fee_minor: int, *, merchant_liable: bool
) -> int:
    """p(fraud | approved) x (amount + chargeback fee) when the merchant carries the liability
    (no authenticated 3DS), else 0; minor units, half-even."""
    p = _probability(p_fraud, "p_fraud")
    loss = _minor(amount_minor, "amount_minor") + _minor(
        chargeback_fee_minor, "chargeback_fee_minor"
    )
    if not merchant_liable:
        return 0
    return int((p * loss).quantize(Decimal(1), rounding=VALUE_ROUNDING.value))


def expected_net_value(
    p_approve: float | Decimal,
    value_minor: int,
    approval_cost_minor: int,
    expected_fraud_loss_minor: int,
    attempt_cost_minor: int,
) -> int:
    """``p * (value - approval cost - expected fraud loss) - attempt cost`` in minor units.

    Computed in Decimal from the probability's exact value and rounded once, half-even.
    """
    p = _probability(p_approve, "p_approve")
    margin = (
        _minor(value_minor, "value_minor")
        - _minor(approval_cost_minor, "approval_cost_minor")
        - _minor(expected_fraud_loss_minor, "expected_fraud_loss_minor")
    )
    net = p * margin - _minor(attempt_cost_minor, "attempt_cost_minor")
    return int(net.quantize(Decimal(1), rounding=VALUE_ROUNDING.value))


@dataclass(frozen=True, slots=True)
class RouteValue:
    """One route's expected net value and the numbers behind it."""

    route_id: str
    p_approve: float | Decimal
    net_value_minor: int
    costs: CostBreakdown
    expected_fraud_loss_minor: int


def rank_routes(
    table: RouteTable,
    amount: Money,
    card: CardProfile,
    p_approve: Mapping[str, float | Decimal],
    *,
    value_minor: int,
    fraud_loss_minor: Mapping[str, int] | int = 0,
    rates: ExchangeRates | None = None,
) -> list[RouteValue]:
    """The routes of ``p_approve`` ranked by expected net value, best first (ties by route id).

    ``value_minor`` is the value of an approval (merchant value or platform revenue) in the
    amount's currency; ``fraud_loss_minor`` the expected fraud loss if approved, one number or one
    per route. Unknown routes are NotFound; routes that do not accept the card are InvalidInput.
    """
    ranked: list[RouteValue] = []
    for route_id, p in p_approve.items():
        route = table[route_id]
        costs = cost_breakdown(route, amount, card, rates=rates)
        loss = fraud_loss_minor if isinstance(fraud_loss_minor, int) else fraud_loss_minor[route_id]
        net = expected_net_value(
            p,
            value_minor,
            costs.approval_cost.amount_minor,
            loss,
            costs.attempt_cost.amount_minor,
        )
        ranked.append(RouteValue(route_id, p, net, costs, loss))
    ranked.sort(key=lambda v: (-v.net_value_minor, v.route_id))
    return ranked
