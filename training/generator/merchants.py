"""Merchants: country, MCC and business model, ticket size, margin and pricing, channel mix,
3DS practice, fraud level and the retry policy each one runs (docs/generator.md, "Entities" and
"Logging policies")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from forestgate.training.generator import countries

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Mcc:
    code: str
    group: str
    model: str  # one_off, subscription, marketplace, travel, digital
    margin: float  # gross margin of the merchant
    ticket_usd: float  # median ticket
    mit_share: float  # share of the merchant's payments that are merchant-initiated
    fraud_mult: float
    restricted: bool  # gambling, crypto: more 57/62 restriction declines
    weight: float  # share of merchants


MCCS: tuple[Mcc, ...] = (
    Mcc("5815", "digital", "digital", 0.80, 12, 0.30, 3.0, False, 0.05),
    Mcc("5816", "digital", "digital", 0.80, 18, 0.10, 3.0, False, 0.05),
    Mcc("5817", "digital", "subscription", 0.80, 9, 0.60, 3.0, False, 0.05),
    Mcc("5818", "digital", "digital", 0.80, 25, 0.20, 3.0, False, 0.03),
    Mcc("4899", "subscription", "subscription", 0.60, 15, 0.85, 1.0, False, 0.07),
    Mcc("5968", "subscription", "subscription", 0.50, 25, 0.85, 1.2, False, 0.05),
    Mcc("5734", "subscription", "subscription", 0.80, 40, 0.75, 1.0, False, 0.06),
    Mcc("5311", "retail", "one_off", 0.35, 70, 0.03, 1.0, False, 0.08),
    Mcc("5651", "retail", "one_off", 0.40, 60, 0.03, 1.0, False, 0.09),
    Mcc("5732", "retail", "one_off", 0.30, 160, 0.03, 1.5, False, 0.07),
    Mcc("5942", "retail", "one_off", 0.35, 25, 0.05, 1.0, False, 0.04),
    Mcc("5999", "retail", "one_off", 0.35, 45, 0.05, 1.2, False, 0.07),
    Mcc("5399", "marketplace", "marketplace", 0.15, 45, 0.08, 1.3, False, 0.06),
    Mcc("5812", "food", "one_off", 0.25, 30, 0.10, 1.0, False, 0.05),
    Mcc("5814", "food", "one_off", 0.25, 18, 0.15, 1.0, False, 0.04),
    Mcc("4511", "travel", "travel", 0.10, 350, 0.02, 1.5, False, 0.04),
    Mcc("7011", "travel", "travel", 0.12, 220, 0.05, 1.2, False, 0.04),
    Mcc("4722", "travel", "travel", 0.08, 300, 0.02, 1.5, False, 0.03),
    Mcc("7995", "gambling", "digital", 0.50, 50, 0.05, 2.0, True, 0.02),
    Mcc("6051", "crypto", "digital", 0.30, 200, 0.05, 2.0, True, 0.01),
)

RETRY_POLICIES: tuple[str, ...] = ("fixed-v1", "randomized-v1", "legacy")
PRICING: tuple[str, ...] = ("blended", "icpp")


@dataclass(frozen=True, slots=True)
class Merchants:
    country: I64
    mcc: I64  # index into MCCS
    weight: F64
    ticket_usd: F64
    margin: F64
    mit_share: F64
    fraud_level: F64
    pricing: I64  # index into PRICING
    mdr_bps: I64  # blended: 290 bp + 30 cents; IC++: the markup only
    offers_local_currency: B
    sca_misconfigured: F64  # share of in-scope CITs sent without 3DS and without an exemption
    exemption_rate: F64  # share of eligible low-value/TRA CITs that request an exemption
    us_3ds_share: F64  # US merchants: share of (risky) CITs sent through 3DS
    retry_policy: I64  # index into RETRY_POLICIES

    @property
    def size(self) -> int:
        return int(self.country.size)

    def ids(self) -> list[str]:
        return [f"MER{i:05d}" for i in range(self.size)]

    def mcc_codes(self) -> list[str]:
        return [MCCS[i].code for i in self.mcc.tolist()]

    def flag(self, attr: str) -> npt.NDArray[np.generic]:
        return np.array([getattr(MCCS[i], attr) for i in self.mcc.tolist()])


def sample_merchants(rng: np.random.Generator, *, count: int) -> Merchants:
    share = countries.column("merchant_share")
    country = rng.choice(share.size, size=count, p=share / share.sum()).astype(np.int64)
    mw = np.array([m.weight for m in MCCS])
    mcc = rng.choice(len(MCCS), size=count, p=mw / mw.sum()).astype(np.int64)
    ticket = np.array([m.ticket_usd for m in MCCS])[mcc] * rng.lognormal(0.0, 0.35, count)
    margin = np.clip(
        np.array([m.margin for m in MCCS])[mcc] + rng.normal(0, 0.03, count), 0.03, 0.95
    )
    mit_share = np.clip(
        np.array([m.mit_share for m in MCCS])[mcc] * rng.lognormal(0.0, 0.2, count), 0.0, 0.95
    )
    pricing = (rng.random(count) < 0.35).astype(np.int64)
    has_mit = mit_share > 0.2
    # Retry policy (docs/generator.md, "Logging policies"): a legacy, rule-breaking policy on
    # about 5 % of merchants, all of them with merchant-initiated traffic so the legacy retries
    # actually happen; the rest split between a fixed compliant schedule and randomised delays
    # with logged propensities.
    policy = np.where(rng.random(count) < 0.5, 0, 1).astype(np.int64)
    n_legacy = max(2, round(0.05 * count))
    candidates = np.flatnonzero(has_mit)
    legacy = rng.choice(candidates, size=min(n_legacy, candidates.size), replace=False)
    policy[legacy] = 2
    psd2 = np.isin(country, [countries.INDEX[c] for c in countries.PSD2])
    return Merchants(
        country=country,
        mcc=mcc,
        # Skewed volume: large merchants carry much of the traffic, but none dominates a preset
        # (a power law on a few hundred merchants lets one merchant set every statistic).
        weight=rng.lognormal(0.0, 1.0, count),
        ticket_usd=ticket,
        margin=margin,
        mit_share=mit_share,
        fraud_level=rng.lognormal(0.0, 0.5, count),
        pricing=pricing,
        mdr_bps=np.where(pricing == 0, 290, rng.integers(25, 61, count)).astype(np.int64),
        offers_local_currency=rng.random(count) < 0.2,
        sca_misconfigured=np.where(psd2, rng.beta(1.0, 60.0, count), 0.0),
        exemption_rate=rng.uniform(0.3, 0.9, count),
        us_3ds_share=rng.uniform(0.0, 0.05, count),
        retry_policy=policy,
    )
