"""Issuers and their BINs: latent strictness, cross-border penalty, generic-code masking, advice
code support, token and 3DS stance, outage episodes (docs/generator.md, "Entities").

Everything here except the identifiers and the BIN attributes is ground truth: the issuers table
keeps the latent parameters and is written on the truth side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# The label vocabularies are the feature definitions', so a generated label and its feature code
# cannot drift apart.
from forestgate.payments.features import TIERS
from forestgate.training.generator import countries
from forestgate.training.generator.episodes import Episodes

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


# Funding mix per country [D]: US and BR lean debit, the EU credit/debit split is even.
_FUNDING_MIX = {
    "US": (0.42, 0.50, 0.08),
    "BR": (0.40, 0.45, 0.15),
    "MX": (0.35, 0.50, 0.15),
    "IN": (0.30, 0.60, 0.10),
}
_DEFAULT_FUNDING = (0.45, 0.47, 0.08)


@dataclass(frozen=True, slots=True)
class Issuers:
    country: I64
    weight: F64  # volume weight within the country (power law)
    alpha: F64  # approval intercept, logit
    kappa: F64  # cross-border penalty, logit
    generic: F64  # share of specific risk reasons reported as 05
    mac_support: B
    token_support: B
    token_bonus: F64
    sca_soft: F64  # probability of a soft decline for an unauthenticated in-scope CIT
    exemption_accept: F64  # probability an SCA exemption request is accepted
    us_3ds_penalty: F64  # logit penalty for a 3DS-authenticated CIT at a US issuer
    suspicion_half_life_s: F64  # how fast a risk decline's suspicion decays
    outages: Episodes

    @property
    def size(self) -> int:
        return int(self.country.size)

    def ids(self) -> list[str]:
        return [f"ISS{i:04d}" for i in range(self.size)]


@dataclass(frozen=True, slots=True)
class Bins:
    bin8: list[str]
    issuer: I64
    brand: I64  # index into BRANDS
    funding: I64  # index into FUNDING
    tier: I64  # index into TIERS
    commercial: B

    @property
    def size(self) -> int:
        return int(self.issuer.size)


def sample_issuers(rng: np.random.Generator, *, count: int, horizon_s: int) -> Issuers:
    share = countries.column("card_share")
    # Every country gets at least two issuers; the rest follow the card share.
    per_country = np.maximum(2, np.floor(share / share.sum() * (count - 2 * share.size))).astype(
        np.int64
    )
    per_country[0] += count - int(per_country.sum())
    country = np.repeat(np.arange(share.size, dtype=np.int64), per_country)
    n = country.size
    rank = np.concatenate([np.arange(1, k + 1) for k in per_country]).astype(np.float64)
    weight = rank**-1.1 * rng.lognormal(0.0, 0.3, n)
    strict = countries.column("strictness")[country]
    kappa_mean = countries.column("xb_penalty")[country]
    us = country == countries.INDEX["US"]
    return Issuers(
        country=country,
        weight=weight,
        alpha=rng.normal(strict, 0.4),
        kappa=kappa_mean * rng.lognormal(0.0, 0.3, n),
        generic=rng.beta(2.0, 3.0, n),
        mac_support=rng.random(n) < 0.7,
        token_support=rng.random(n) < 0.85,
        token_bonus=np.full(n, 0.25),
        sca_soft=rng.uniform(0.6, 0.95, n),
        exemption_accept=rng.uniform(0.8, 0.97, n),
        us_3ds_penalty=np.where(us, rng.uniform(0.1, 0.6, n), 0.0),
        suspicion_half_life_s=rng.uniform(1.0, 3.0, n) * 86_400.0,
        # About one episode a month, 40 minutes on average (docs/generator.md, "Entities").
        outages=Episodes.sample(
            rng, entities=n, horizon_s=horizon_s, rate_per_day=1 / 30, mean_duration_s=2_400.0
        ),
    )


def sample_bins(rng: np.random.Generator, *, count: int, issuers: Issuers) -> Bins:
    n_iss = issuers.size
    # One BIN per issuer at least, the rest in proportion to volume.
    extra = rng.multinomial(count - n_iss, issuers.weight / issuers.weight.sum())
    issuer = np.repeat(np.arange(n_iss, dtype=np.int64), 1 + extra)
    n = issuer.size
    brand = (rng.random(n) < 0.45).astype(np.int64)  # 0 visa, 1 mastercard
    country = issuers.country[issuer]
    funding = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    for ci, code in enumerate(countries.CODES):
        mix = np.cumsum(_FUNDING_MIX.get(code, _DEFAULT_FUNDING))
        here = country == ci
        funding[here] = np.searchsorted(mix, u[here] * mix[-1], side="right")
    tier = np.searchsorted(np.cumsum([0.6, 0.2, 0.14, 0.06]), rng.random(n) * 1.0, side="right")
    tier = np.minimum(tier, len(TIERS) - 1).astype(np.int64)
    tier[funding == 2] = 0  # prepaid is standard
    return Bins(
        bin8=_unique_bins(rng, brand),
        issuer=issuer,
        brand=brand,
        funding=funding,
        tier=tier,
        commercial=tier == 3,
    )


def _unique_bins(rng: np.random.Generator, brand: I64) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for b in brand.tolist():
        while True:
            if b == 0:
                text = "4" + "".join(map(str, rng.integers(0, 10, 7).tolist()))
            else:
                text = str(int(rng.integers(51, 56))) + "".join(
                    map(str, rng.integers(0, 10, 6).tolist())
                )
            if text not in seen:
                seen.add(text)
                out.append(text)
                break
    return out
