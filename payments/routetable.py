"""The route cost table: each acquirer route's cost schedule (interchange by relation and card
type, scheme fees, acquirer markup, FX spread, per-attempt fee), loaded from routes.yaml and
checked before anything runs: a negative cost, an unknown currency or field is a ConfigError
naming the file, the line and the field.
"""

from __future__ import annotations

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
from forestgate.payments.money import check_currency

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
