"""Acquirer routes of the synthetic world: the platform's route cost table
(forestgate.payments.economics, payments/routes.yaml) plus the behaviour the table does not
hold: latency, outages, quality offsets per issuer country, token/MAC/3DS passthrough, go-live
date (docs/generator.md, "Entities"; docs/payments.md, "Routing").

Costs are computed vectorised with integer arithmetic that reproduces
``economics.cost_breakdown`` exactly: basis-point fees round half-up per component, and fixed
fees in the settlement currency are converted once per (fee, currency) through
``ExchangeRates.convert`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from forestgate.payments.economics import (
    COST_ROUNDING,
    CardType,
    Relation,
    RouteCost,
    RouteTable,
)
from forestgate.payments.features import BRANDS
from forestgate.payments.money import ExchangeRates, Money
from forestgate.training.generator import countries
from forestgate.training.generator.episodes import Episodes

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

# Card types in the order of the cost arrays' last axis.
CARD_TYPES: tuple[CardType, ...] = (
    CardType.CREDIT,
    CardType.DEBIT,
    CardType.PREPAID,
    CardType.COMMERCIAL,
)
RELATIONS: tuple[Relation, ...] = (Relation.LOCAL, Relation.CROSS_BORDER)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a route does that its price list does not say [D]."""

    latency_median_ms: float = 400.0
    outage_per_day: float = 1 / 45
    outage_mean_s: float = 1_800.0
    glitch_rate: float = 0.0025  # route-side 91/96/30/92 outside outages
    token_passthrough: bool = True
    mac_passthrough: bool = True
    three_ds: bool = True  # carries 3DS data (and so keeps an SCA exemption or authentication)
    approval_offset: float = 0.0  # a known structural offset on top of the latent delta_r
    issuer_countries: frozenset[str] | None = None  # None: any issuer country
    excluded_mccs: frozenset[str] = frozenset()
    live_from_day: int = 0


BEHAVIOUR: dict[str, Behaviour] = {
    "A-US": Behaviour(latency_median_ms=300, excluded_mccs=frozenset({"7995"})),
    "A-EU": Behaviour(latency_median_ms=280),
    "B-GB": Behaviour(latency_median_ms=260),
    "C-BR": Behaviour(
        latency_median_ms=450,
        outage_per_day=1 / 20,
        glitch_rate=0.004,
        mac_passthrough=False,
        excluded_mccs=frozenset({"7995", "6051"}),
    ),
    "C-MX": Behaviour(latency_median_ms=480, outage_per_day=1 / 25, glitch_rate=0.004),
    "D-XB": Behaviour(
        latency_median_ms=520, token_passthrough=False, glitch_rate=0.003, approval_offset=-0.1
    ),
    # PINless debit: US cards only, no 3DS, a slight approval penalty (docs/generator.md,
    # "Entities"); it goes live on day 90 of the horizon: the cold-start scenario of
    # docs/generator.md, "Scenarios".
    "E-US-DEBIT": Behaviour(
        latency_median_ms=350,
        token_passthrough=False,
        three_ds=False,
        approval_offset=-0.2,
        issuer_countries=frozenset({"US"}),
        live_from_day=90,
    ),
}
NEW_ROUTE = "E-US-DEBIT"


@dataclass(frozen=True, slots=True)
class Routes:
    table: RouteTable
    ids: tuple[str, ...]
    country: tuple[str, ...]  # acquiring entity country
    local: B  # (R, countries): issuer countries acquired locally
    networks: B  # (R, brands)
    card_types: B  # (R, CARD_TYPES)
    issuer_ok: B  # (R, countries)
    excluded_mccs: tuple[frozenset[str], ...]
    live_from_s: I64
    latency_median_ms: F64
    glitch_rate: F64
    token_passthrough: B
    mac_passthrough: B
    three_ds: B
    offset: F64  # structural offset + latent delta_r
    offset_country: F64  # (R, countries): latent delta_{r,c}
    outages: Episodes
    settlement_currency: I64  # index into countries.CURRENCIES
    # Costs: bps as integers x 100 (hundredths of a basis point), fixed fees per currency.
    interchange_bps100: I64  # (R, relation, card type)
    interchange_fixed: I64  # (R, relation, card type, currency)
    scheme_bps100: I64  # (R, relation)
    scheme_fixed: I64  # (R, relation, currency)
    markup_bps100: I64  # (R,)
    markup_fixed: I64  # (R, currency)
    fx_bps100: I64  # (R,)
    attempt_fixed: I64  # (R, currency)

    @property
    def size(self) -> int:
        return len(self.ids)

    def index(self, route_id: str) -> int:
        return self.ids.index(route_id)


def _bps100(value: Decimal) -> int:
    scaled = value * 100
    if scaled != scaled.to_integral_value():
        raise ValueError(f"basis points finer than 1/100 are not supported: {value}")
    return int(scaled)


def build_routes(
    rng: np.random.Generator, *, table: RouteTable, rates: ExchangeRates, horizon_s: int
) -> Routes:
    routes = list(table)
    n = len(routes)
    n_c = len(countries.CODES)
    cur = countries.CURRENCIES
    beh = [BEHAVIOUR.get(r.route_id, Behaviour()) for r in routes]
    costs = _CostArrays.of(routes, rates)
    local = np.array(
        [[c in r.local_countries for c in countries.CODES] for r in routes], dtype=np.bool_
    )
    issuer_ok = np.array(
        [
            [b.issuer_countries is None or c in b.issuer_countries for c in countries.CODES]
            for b in beh
        ],
        dtype=np.bool_,
    )
    outages = _outages(rng, beh, horizon_s=horizon_s)
    return Routes(
        table=table,
        ids=tuple(r.route_id for r in routes),
        country=tuple(r.country for r in routes),
        local=local,
        networks=np.array([[b in r.networks for b in BRANDS] for r in routes], dtype=np.bool_),
        card_types=np.array([[t in r.card_types for t in CARD_TYPES] for r in routes]),
        issuer_ok=issuer_ok,
        excluded_mccs=tuple(b.excluded_mccs for b in beh),
        live_from_s=np.array([b.live_from_day * 86_400 for b in beh], dtype=np.int64),
        latency_median_ms=np.array([b.latency_median_ms for b in beh]),
        glitch_rate=np.array([b.glitch_rate for b in beh]),
        token_passthrough=np.array([b.token_passthrough for b in beh], dtype=np.bool_),
        mac_passthrough=np.array([b.mac_passthrough for b in beh], dtype=np.bool_),
        three_ds=np.array([b.three_ds for b in beh], dtype=np.bool_),
        offset=np.array([b.approval_offset for b in beh]) + rng.normal(0.0, 0.15, n),
        offset_country=rng.normal(0.0, 0.2, (n, n_c)),
        outages=outages,
        settlement_currency=np.array([cur.index(r.settlement_currency) for r in routes]),
        interchange_bps100=costs.interchange_bps100,
        interchange_fixed=costs.interchange_fixed,
        scheme_bps100=costs.scheme_bps100,
        scheme_fixed=costs.scheme_fixed,
        markup_bps100=costs.markup_bps100,
        markup_fixed=costs.markup_fixed,
        fx_bps100=costs.fx_bps100,
        attempt_fixed=costs.attempt_fixed,
    )


def _outages(rng: np.random.Generator, beh: list[Behaviour], *, horizon_s: int) -> Episodes:
    """Outage episodes of every route: each route's process has its own rate, so each is
    sampled on its own and the results merged."""
    parts = []
    for i, b in enumerate(beh):
        ep = Episodes.sample(
            rng,
            entities=1,
            horizon_s=horizon_s,
            rate_per_day=b.outage_per_day,
            mean_duration_s=b.outage_mean_s,
        )
        parts.append(Episodes.of(ep.key + i, ep.start_s, ep.end_s))
    outages = parts[0]
    for p in parts[1:]:
        outages = outages.merged(p)
    return outages


@dataclass(frozen=True, slots=True)
class _CostArrays:
    """The route table's fees as arrays (see ``Routes`` for the axes)."""

    interchange_bps100: I64
    interchange_fixed: I64
    scheme_bps100: I64
    scheme_fixed: I64
    markup_bps100: I64
    markup_fixed: I64
    fx_bps100: I64
    attempt_fixed: I64

    @staticmethod
    def of(routes: list[RouteCost], rates: ExchangeRates) -> _CostArrays:
        n, n_cur, n_ct = len(routes), len(countries.CURRENCIES), len(CARD_TYPES)
        ic_bps = np.zeros((n, 2, n_ct), dtype=np.int64)
        ic_fixed = np.zeros((n, 2, n_ct, n_cur), dtype=np.int64)
        sc_bps = np.zeros((n, 2), dtype=np.int64)
        sc_fixed = np.zeros((n, 2, n_cur), dtype=np.int64)
        mk_bps = np.zeros(n, dtype=np.int64)
        mk_fixed = np.zeros((n, n_cur), dtype=np.int64)
        fx_bps = np.zeros(n, dtype=np.int64)
        att_fixed = np.zeros((n, n_cur), dtype=np.int64)
        for i, r in enumerate(routes):
            for j, rel in enumerate(RELATIONS):
                for k, ct in enumerate(CARD_TYPES):
                    fee = r.interchange[rel].get(ct)
                    if fee is not None:
                        ic_bps[i, j, k] = _bps100(fee.bps)
                        ic_fixed[i, j, k] = _fixed_in(r, fee.fixed_minor, rates)
                sc_bps[i, j] = _bps100(r.scheme_fee[rel].bps)
                sc_fixed[i, j] = _fixed_in(r, r.scheme_fee[rel].fixed_minor, rates)
            mk_bps[i] = _bps100(r.acquirer_markup.bps)
            mk_fixed[i] = _fixed_in(r, r.acquirer_markup.fixed_minor, rates)
            fx_bps[i] = _bps100(r.fx_spread_bps)
            att_fixed[i] = _fixed_in(r, r.per_attempt_fee_minor, rates)
        return _CostArrays(ic_bps, ic_fixed, sc_bps, sc_fixed, mk_bps, mk_fixed, fx_bps, att_fixed)


def _fixed_in(route: RouteCost, minor: int, rates: ExchangeRates) -> list[int]:
    """A fixed fee in the route's settlement currency, in every currency of the world."""
    out = []
    for target in countries.CURRENCIES:
        if minor == 0:
            out.append(0)
        elif target == route.settlement_currency:
            out.append(minor)
        else:
            money = Money(minor, route.settlement_currency)
            out.append(rates.convert(money, target, rounding=COST_ROUNDING).amount_minor)
    return out


def bps_fee(amount_minor: I64, bps100: I64) -> I64:
    """``amount * bps / 10,000`` rounded half-up, exactly as Money.bps(..., HALF_UP) for
    non-negative amounts: floor(a * b / 1e6 + 1/2) with b in hundredths of a basis point."""
    return (2 * amount_minor * bps100 + 1_000_000) // 2_000_000


@dataclass(frozen=True, slots=True)
class Costs:
    """Cost components of attempts in minor units of their presentment currency."""

    interchange: I64
    scheme_fee: I64
    acquirer_fee: I64
    fx_fee: I64
    auth_fee: I64


def attempt_costs(
    routes: Routes,
    *,
    route: I64,
    local: B,
    card_type: I64,
    currency: I64,
    amount_minor: I64,
    approved: B,
) -> Costs:
    """Costs of attempts: approval costs only when approved, the per-attempt fee always."""
    rel = np.where(local, 0, 1)
    ic = (
        bps_fee(amount_minor, routes.interchange_bps100[route, rel, card_type])
        + (routes.interchange_fixed[route, rel, card_type, currency])
    )
    sc = (
        bps_fee(amount_minor, routes.scheme_bps100[route, rel])
        + routes.scheme_fixed[route, rel, currency]
    )
    mk = bps_fee(amount_minor, routes.markup_bps100[route]) + routes.markup_fixed[route, currency]
    fx_needed = routes.settlement_currency[route] != currency
    fx = np.where(fx_needed, bps_fee(amount_minor, routes.fx_bps100[route]), 0)
    zero = np.zeros_like(amount_minor)
    return Costs(
        interchange=np.where(approved, ic, zero),
        scheme_fee=np.where(approved, sc, zero),
        acquirer_fee=np.where(approved, mk, zero),
        fx_fee=np.where(approved, fx, zero),
        auth_fee=routes.attempt_fixed[route, currency],
    )
