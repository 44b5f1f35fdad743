"""Route economics: what an authorization attempt costs on each acquirer route, read from a route
cost table, and the expected net value that ranks the routes (DOMAIN.md)::

    E[net | r] = p_r * (value - approval costs_r - expected fraud loss_r) - attempt cost_r

Approval costs (interchange, scheme fees, acquirer markup, FX spread) are paid on approved,
cleared payments; the attempt cost (per-attempt fee) on every attempt. Costs come from the table,
never from a model. Money is integer minor units; rates are Decimals; rounding is named.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from forestgate.errors import InvalidInput, NotFound
from forestgate.payments.document import Node, read
from forestgate.payments.errors import UnknownCurrency
from forestgate.payments.money import ExchangeRates, Money, Rounding, check_currency

# Each fee component is rounded on its own, as an acquirer's statement prints it.
COST_ROUNDING = Rounding.HALF_UP
# Expected values are estimates, not charges: unbiased rounding.
VALUE_ROUNDING = Rounding.HALF_EVEN

_COUNTRY = re.compile(r"[A-Z]{2}")


class CardType(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"
    PREPAID = "prepaid"
    COMMERCIAL = "commercial"


class Relation(StrEnum):
    """The card's issuer country against the route: local acquiring or cross-border."""

    LOCAL = "local"
    CROSS_BORDER = "cross_border"


@dataclass(frozen=True, slots=True)
class Fee:
    """``bps`` basis points of the amount plus ``fixed_minor`` minor units of the route's
    settlement currency."""

    bps: Decimal
    fixed_minor: int = 0


@dataclass(frozen=True, slots=True)
class CardProfile:
    """What the cost schedule needs to know about a card (from its BIN)."""

    network: str  # "visa", "mastercard", ...
    card_type: CardType | str
    issuer_country: str  # ISO 3166 alpha-2

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "card_type", CardType(self.card_type))
        except ValueError:
            types = ", ".join(t.value for t in CardType)
            raise InvalidInput(
                f"card_type must be one of {types}, got {self.card_type!r}"
            ) from None


@dataclass(frozen=True, slots=True)
class RouteCost:
    """One acquirer route's cost schedule."""

    route_id: str
    acquirer: str
    country: str
    settlement_currency: str
    local_countries: frozenset[str]
    networks: frozenset[str]
    card_types: frozenset[CardType]
    interchange: Mapping[Relation, Mapping[CardType, Fee]]
    scheme_fee: Mapping[Relation, Fee]
    acquirer_markup: Fee
    fx_spread_bps: Decimal
    per_attempt_fee_minor: int

    def relation(self, card: CardProfile) -> Relation:
        return (
            Relation.LOCAL if card.issuer_country in self.local_countries else Relation.CROSS_BORDER
        )

    def eligible(self, card: CardProfile) -> bool:
        """Whether the route accepts this card's network and type at all."""
        return card.network in self.networks and card.card_type in self.card_types


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


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Every route's cost schedule, loaded and checked from one YAML file."""

    version: str
    source: Path
    routes: Mapping[str, RouteCost]

    @classmethod
    def load(cls, path: Path | None = None) -> RouteTable:
        """Read and check ``path`` (default: the packaged routes.yaml); ConfigError naming the
        file, line and field on a negative cost, an unknown currency or an unknown field."""
        path = default_routes_path() if path is None else Path(path)
        return _parse_table(read(path), path)

    def __getitem__(self, route_id: str) -> RouteCost:
        try:
            return self.routes[route_id]
        except KeyError:
            raise NotFound(
                f"unknown route {route_id!r} (routes: {', '.join(self.routes)})"
            ) from None

    def __iter__(self) -> Iterator[RouteCost]:
        return iter(self.routes.values())

    def __len__(self) -> int:
        return len(self.routes)

    def eligible(self, card: CardProfile) -> tuple[RouteCost, ...]:
        return tuple(r for r in self.routes.values() if r.eligible(card))


def default_routes_path() -> Path:
    """The routes.yaml shipped inside the package."""
    return Path(str(resources.files("forestgate.payments").joinpath("routes.yaml")))


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


# -- the route table file ---------------------------------------------------------------------

_ROUTE_FIELDS = (
    "id",
    "acquirer",
    "country",
    "settlement_currency",
    "local_countries",
    "networks",
    "interchange",
    "scheme_fee",
    "acquirer_markup",
    "fx_spread_bps",
    "per_attempt_fee_minor",
)


def _parse_table(root: Node, path: Path) -> RouteTable:
    top = root.fields(required=("version", "routes"))
    routes: dict[str, RouteCost] = {}
    for item in top["routes"].sequence():
        route = _parse_route(item)
        if route.route_id in routes:
            raise item.error(f"route id {route.route_id!r} listed twice")
        routes[route.route_id] = route
    if not routes:
        raise top["routes"].error("the table needs at least one route")
    return RouteTable(top["version"].text(), path, MappingProxyType(routes))


def _country(node: Node) -> str:
    text = node.text()
    if not _COUNTRY.fullmatch(text):
        raise node.error(f"expected an ISO 3166 alpha-2 country code, got {text!r}")
    return text


def _cost(node: Node) -> Decimal:
    return node.decimal(minimum=Decimal(0), what="cost")


def _fee(node: Node) -> Fee:
    fields = node.fields(required=("bps",), optional=("fixed_minor",))
    fixed = 0
    if "fixed_minor" in fields:
        value = _cost(fields["fixed_minor"])
        if value != value.to_integral_value():
            raise fields["fixed_minor"].error(f"fixed_minor is whole minor units, got {value}")
        fixed = int(value)
    return Fee(_cost(fields["bps"]), fixed)


def _parse_route(node: Node) -> RouteCost:
    fields = node.fields(required=_ROUTE_FIELDS, optional=("card_types",))
    route_id = fields["id"].text()
    currency_node = fields["settlement_currency"]
    try:
        currency = check_currency(currency_node.text())
    except UnknownCurrency as exc:
        raise currency_node.error(str(exc)) from None
    card_types = frozenset(CardType)
    if "card_types" in fields:
        card_types = frozenset(_enum(CardType, n) for n in fields["card_types"].sequence())
    interchange: dict[Relation, Mapping[CardType, Fee]] = {}
    inter_fields = fields["interchange"].fields(required=tuple(Relation))
    for relation in Relation:
        by_type = inter_fields[relation].fields(
            required=tuple(t.value for t in sorted(card_types)),
            optional=tuple(CardType),
        )
        interchange[relation] = MappingProxyType(
            {CardType(name): _fee(fee_node) for name, fee_node in by_type.items()}
        )
    scheme_fields = fields["scheme_fee"].fields(required=tuple(Relation))
    per_attempt = _cost(fields["per_attempt_fee_minor"])
    if per_attempt != per_attempt.to_integral_value():
        raise fields["per_attempt_fee_minor"].error("whole minor units expected")
    return RouteCost(
        route_id=route_id,
        acquirer=fields["acquirer"].text(),
        country=_country(fields["country"]),
        settlement_currency=currency,
        local_countries=frozenset(_country(n) for n in fields["local_countries"].sequence()),
        networks=frozenset(fields["networks"].texts()),
        card_types=card_types,
        interchange=MappingProxyType(interchange),
        scheme_fee=MappingProxyType({Relation(k): _fee(v) for k, v in scheme_fields.items()}),
        acquirer_markup=_fee(fields["acquirer_markup"]),
        fx_spread_bps=_cost(fields["fx_spread_bps"]),
        per_attempt_fee_minor=int(per_attempt),
    )


def _enum(kind: type[CardType], node: Node) -> CardType:
    text = node.text()
    try:
        return kind(text)
    except ValueError:
        choices = ", ".join(k.value for k in kind)
        raise node.error(f"unknown {kind.__name__} {text!r}; expected one of {choices}") from None
