"""The synthetic world: every entity of docs/generator.md, "Entities", sampled once from one
seeded generator, plus the rules and route tables of the payments core it runs under."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from forestgate.payments.codes import ResponseCodes
from forestgate.payments.economics import RouteTable
from forestgate.payments.guardrail import Rules
from forestgate.payments.money import ExchangeRates
from forestgate.training.generator import countries
from forestgate.training.generator.cards import Cards, sample_cards
from forestgate.training.generator.horizon import Horizon, PaydayCalendar
from forestgate.training.generator.issuers import Bins, Issuers, sample_bins, sample_issuers
from forestgate.training.generator.merchants import Merchants, sample_merchants
from forestgate.training.generator.presets import Preset
from forestgate.training.generator.routes import Routes, build_routes


@dataclass(frozen=True, slots=True)
class World:
    preset: Preset
    seed: int
    horizon: Horizon
    paydays: PaydayCalendar
    issuers: Issuers
    bins: Bins
    cards: Cards
    merchants: Merchants
    routes: Routes
    rules: Rules
    rates: ExchangeRates


def exchange_rates(shock: dict[str, float] | None = None) -> ExchangeRates:
    """Mid rates with USD as base; ``shock`` scales a currency's USD value (BRL -10 %: 0.9)."""
    per_base: dict[str, Decimal] = {}
    for c in countries.COUNTRIES:
        usd = c.usd_per_unit * (shock or {}).get(c.currency, 1.0)
        per_base[c.currency] = (Decimal(1) / Decimal(repr(usd))).quantize(Decimal("0.000001"))
    return ExchangeRates("USD", per_base)


def build_world(preset: Preset, seed: int) -> World:
    # Independent streams per entity kind, so resizing one table does not reshuffle the others.
    root = np.random.SeedSequence(seed)
    s_iss, s_bin, s_card, s_mer, s_route, s_key = root.spawn(6)
    horizon = Horizon(preset.start, preset.days)
    rules = Rules.load()
    rates = exchange_rates()
    issuers = sample_issuers(
        np.random.default_rng(s_iss), count=preset.issuers, horizon_s=horizon.end_s
    )
    bins = sample_bins(np.random.default_rng(s_bin), count=preset.bins, issuers=issuers)
    pan_key = np.random.default_rng(s_key).bytes(32)
    cards = sample_cards(
        np.random.default_rng(s_card),
        count=preset.cards,
        issuers=issuers,
        bins=bins,
        horizon=horizon,
        pan_key=pan_key,
    )
    merchants = sample_merchants(np.random.default_rng(s_mer), count=preset.merchants)
    routes = build_routes(
        np.random.default_rng(s_route),
        table=RouteTable.load(),
        rates=rates,
        horizon_s=horizon.end_s,
    )
    return World(
        preset=preset,
        seed=seed,
        horizon=horizon,
        paydays=PaydayCalendar.build(horizon),
        issuers=issuers,
        bins=bins,
        cards=cards,
        merchants=merchants,
        routes=routes,
        rules=rules,
        rates=rates,
    )


def response_codes(world: World) -> ResponseCodes:
    return world.rules.codes
