"""Labelled drift scenarios injected into the synthetic world (docs/generator.md, "Scenarios"):
each is a row of ``scenario_events`` with its window and affected keys, and every attempt it
touches carries its ``scenario_id``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from forestgate.training.generator import countries
from forestgate.training.generator.horizon import DAY_S, HOUR_S, Horizon
from forestgate.training.generator.issuers import Issuers
from forestgate.training.generator.merchants import MCCS, Merchants
from forestgate.training.generator.routes import BEHAVIOUR, NEW_ROUTE, Routes

# Days relative to the horizon start [D] (docs/generator.md, "Scenarios").
ROUTE_OUTAGE_DAY = 45
CARD_TESTING_DAY = 60
ISSUER_TIGHTENING_DAY = 70
FX_SHOCK_DAY = 80


@dataclass(frozen=True, slots=True)
class Scenario:
    scenario_id: str
    kind: str
    start_s: int
    end_s: int
    affected: str  # key=value pairs, ';'-separated
    magnitude: float
    description: str


@dataclass(frozen=True, slots=True)
class Scenarios:
    events: tuple[Scenario, ...]
    tightened_issuers: tuple[int, ...]
    tightening_logit: float
    outage_route: int  # -1 when the route does not exist
    card_testing_merchant: int
    fx_shock_currency: str
    fx_shock_factor: float
    peak_days: dict[int, tuple[float, float]]  # day -> (volume multiplier, amount multiplier)

    def by_id(self, scenario_id: str) -> Scenario:
        return next(e for e in self.events if e.scenario_id == scenario_id)

    def index(self, scenario_id: str) -> int:
        return next(i for i, e in enumerate(self.events) if e.scenario_id == scenario_id)


def plan(
    horizon: Horizon,
    *,
    issuers: Issuers,
    merchants: Merchants,
    routes: Routes,
    visa_cap_changes: tuple[dt.date, ...],
) -> Scenarios:
    end = horizon.end_s
    picks = _tightening_issuers(issuers)
    outage_route = routes.ids.index("C-BR") if "C-BR" in routes.ids else -1
    testing_merchant = _card_testing_merchant(merchants)
    peaks, peak_days = _peaks(horizon)
    events = [
        Scenario(
            "issuer_xb_tightening",
            "issuer_policy",
            ISSUER_TIGHTENING_DAY * DAY_S,
            end,
            ";".join(f"issuer_id=ISS{i:04d}" for i in picks) + ";is_cross_border=true",
            -0.08,
            "two large issuers decline about 8 pp more cross-border attempts",
        ),
        *([_route_outage()] if outage_route >= 0 else []),
        _card_testing(testing_merchant),
        *peaks,
        *_visa_cap_changes(horizon, visa_cap_changes),
        Scenario(
            "fx_shock_brl",
            "fx_shock",
            FX_SHOCK_DAY * DAY_S,
            end,
            "currency=BRL",
            -0.10,
            "BRL loses 10 % against USD: USD amounts of BRL payments drop",
        ),
        *([_new_route(end)] if NEW_ROUTE in routes.ids else []),
        Scenario(
            "chargeback_delay",
            "label_delay",
            0,
            end,
            "is_fraud=true",
            0.0,
            "fraud labels (chargebacks) arrive 20-90 days after the attempt",
        ),
    ]
    return Scenarios(
        events=tuple(events),
        tightened_issuers=tuple(picks),
        tightening_logit=0.9,
        outage_route=outage_route,
        card_testing_merchant=testing_merchant,
        fx_shock_currency="BRL",
        fx_shock_factor=0.9,
        peak_days=peak_days,
    )


def _tightening_issuers(issuers: Issuers) -> list[int]:
    """Two large cross-border issuers (EEA and GB) that tighten cross-border approvals."""
    picks: list[int] = []
    for code in ("DE", "GB"):
        mine = np.flatnonzero(issuers.country == countries.INDEX[code])
        picks.append(int(mine[np.argmax(issuers.weight[mine])]))
    return picks


def _route_outage() -> Scenario:
    start = ROUTE_OUTAGE_DAY * DAY_S + 14 * HOUR_S
    return Scenario(
        "route_outage_c_br",
        "route_outage",
        start,
        start + 6 * HOUR_S,
        "route_id=C-BR",
        0.8,
        "acquirer outage: 80 % of attempts on C-BR fail with 91/96 for 6 hours",
    )


def _card_testing_merchant(merchants: Merchants) -> int:
    """The largest digital merchant (the largest merchant when there is none)."""
    digital = np.array([MCCS[m].group == "digital" for m in merchants.mcc.tolist()])
    pool = np.flatnonzero(digital) if digital.any() else np.arange(merchants.size)
    return int(pool[np.argmax(merchants.weight[pool])])


def _card_testing(merchant: int) -> Scenario:
    start = CARD_TESTING_DAY * DAY_S + 2 * HOUR_S
    return Scenario(
        "card_testing",
        "card_testing",
        start,
        start + 3 * HOUR_S,
        f"merchant_id=MER{merchant:05d}",
        0.0,
        "card-testing attack: small amounts on many stolen cards, 10-30 tries per card",
    )


def _peaks(horizon: Horizon) -> tuple[list[Scenario], dict[int, tuple[float, float]]]:
    """Black Friday to Cyber Monday inside the horizon: the labelled days, and every peak day's
    (volume multiplier, amount multiplier)."""
    events: list[Scenario] = []
    peak: dict[int, tuple[float, float]] = {}
    for year in {horizon.start.year, horizon.date_of(horizon.days - 1).year}:
        black_friday = _black_friday(year)
        for offset, (vol, amt), name in (
            (0, (3.0, 1.2), "black_friday"),
            (1, (1.6, 1.1), None),
            (2, (1.6, 1.1), None),
            (3, (2.5, 1.15), "cyber_monday"),
        ):
            day = horizon.day_of(black_friday + dt.timedelta(days=offset))
            if not 0 <= day < horizon.days:
                continue
            peak[day] = (vol, amt)
            if name is not None:
                events.append(
                    Scenario(
                        name,
                        "peak_volume",
                        day * DAY_S,
                        (day + 1) * DAY_S,
                        "channel=ecommerce,in_app",
                        vol,
                        f"{name.replace('_', ' ')}: x{vol} customer-initiated volume, "
                        f"x{amt} amounts",
                    )
                )
    return events, peak


def _visa_cap_changes(horizon: Horizon, changes: tuple[dt.date, ...]) -> list[Scenario]:
    events = []
    for change in changes:
        day = horizon.day_of(change)
        if 0 <= day < horizon.days:
            events.append(
                Scenario(
                    f"visa_cap_{change.isoformat()}",
                    "scheme_rule_change",
                    day * DAY_S,
                    horizon.end_s,
                    "network=visa",
                    0.0,
                    "Visa reattempt cap changes (rules.yaml visa_max_reattempts)",
                )
            )
    return events


def _new_route(end: int) -> Scenario:
    return Scenario(
        "new_route",
        "route_added",
        BEHAVIOUR[NEW_ROUTE].live_from_day * DAY_S,
        end,
        f"route_id={NEW_ROUTE}",
        0.0,
        "a new acquirer route goes live with no history (cold start)",
    )


def _black_friday(year: int) -> dt.date:
    # The day after the fourth Thursday of November.
    first = dt.date(year, 11, 1)
    thursday = first + dt.timedelta(days=(3 - first.weekday()) % 7)
    return thursday + dt.timedelta(days=22)
