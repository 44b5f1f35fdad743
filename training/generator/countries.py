"""The twelve markets of the synthetic world: currency, SCA regime, clock, pay cycles and the
country-level means of the issuers' latent parameters (docs/generator.md, "Entities").

Numbers marked [D] are design choices meant to produce learnable structure, not estimates of any
real market; they live here, in one table, so calibration edits one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Pay cycles. A card follows one; biweekly cycles have two phases (which Friday).
PAY_CYCLES: tuple[str, ...] = (
    "weekly_fri",
    "biweekly_fri",
    "semimonthly_1_15",
    "semimonthly_15_last",
    "monthly_last_workday",
    "monthly_25",
    "monthly_1",
)


@dataclass(frozen=True, slots=True)
class Country:
    """One market. ``strictness`` and ``xb_penalty`` are logit means of its issuers."""

    code: str
    currency: str
    region: str  # fraud region: "NA", "EU", "LATAM", "APAC"
    sca: str  # "psd2" (EEA and GB), "jp3ds", "in_afa", "none"
    utc_offset_h: float
    strictness: float
    xb_penalty: float
    pay_cycles: tuple[tuple[str, float], ...]
    fraud_bp: float  # CNP fraud base rate by count, basis points
    usd_per_unit: float  # mid rate, USD per major unit of the currency
    card_share: float  # share of the world's cards issued here
    merchant_share: float  # share of the platform's merchants based here


COUNTRIES: tuple[Country, ...] = (
    Country("US", "USD", "NA", "none", -5, 2.6, 1.1,
            (("biweekly_fri", 0.45), ("semimonthly_1_15", 0.25), ("weekly_fri", 0.20),
             ("monthly_last_workday", 0.10)), 10, 1.0, 0.28, 0.31),
    Country("CA", "CAD", "NA", "none", -5, 2.6, 1.1,
            (("biweekly_fri", 0.6), ("semimonthly_15_last", 0.3), ("weekly_fri", 0.1)),
            9, 0.73, 0.05, 0.03),
    Country("GB", "GBP", "EU", "psd2", 0, 2.6, 1.1,
            (("monthly_last_workday", 0.85), ("weekly_fri", 0.15)), 9, 1.27, 0.10, 0.11),
    Country("DE", "EUR", "EU", "psd2", 1, 2.6, 1.1,
            (("monthly_last_workday", 0.9), ("monthly_1", 0.1)), 8, 1.08, 0.09, 0.11),
    Country("FR", "EUR", "EU", "psd2", 1, 2.6, 1.1,
            (("monthly_last_workday", 0.9), ("monthly_1", 0.1)), 8, 1.08, 0.07, 0.08),
    Country("NL", "EUR", "EU", "psd2", 1, 2.6, 1.1,
            (("monthly_25", 0.6), ("monthly_last_workday", 0.4)), 8, 1.08, 0.04, 0.05),
    Country("ES", "EUR", "EU", "psd2", 1, 2.6, 1.1,
            (("monthly_last_workday", 0.9), ("monthly_1", 0.1)), 8, 1.08, 0.05, 0.05),
    Country("BR", "BRL", "LATAM", "none", -3, 1.8, 1.6,
            (("semimonthly_15_last", 1.0),), 14, 0.18, 0.08, 0.09),
    Country("MX", "MXN", "LATAM", "none", -6, 1.8, 1.1,
            (("semimonthly_15_last", 1.0),), 13, 0.055, 0.06, 0.06),
    Country("IN", "INR", "APAC", "in_afa", 5.5, 1.8, 1.6,
            (("monthly_1", 0.8), ("monthly_last_workday", 0.2)), 12, 0.012, 0.07, 0.02),
    Country("JP", "JPY", "APAC", "jp3ds", 9, 2.6, 1.1,
            (("monthly_25", 1.0),), 9, 0.0067, 0.06, 0.04),
    Country("AU", "AUD", "APAC", "none", 10, 2.6, 1.1,
            (("biweekly_fri", 0.7), ("weekly_fri", 0.1), ("monthly_last_workday", 0.2)),
            9, 0.66, 0.05, 0.05),
)  # fmt: skip

CODES: tuple[str, ...] = tuple(c.code for c in COUNTRIES)
CURRENCIES: tuple[str, ...] = tuple(sorted({c.currency for c in COUNTRIES}))
INDEX: dict[str, int] = {code: i for i, code in enumerate(CODES)}
PSD2 = frozenset(c.code for c in COUNTRIES if c.sca == "psd2")
EEA = frozenset({"DE", "FR", "NL", "ES"})


def column(name: str) -> npt.NDArray[np.float64]:
    """A numeric attribute of every country, indexed like CODES."""
    return np.array([float(getattr(c, name)) for c in COUNTRIES], dtype=np.float64)


def currency_index() -> npt.NDArray[np.int64]:
    """Each country's currency as an index into CURRENCIES."""
    return np.array([CURRENCIES.index(c.currency) for c in COUNTRIES], dtype=np.int64)


def usd_per_currency() -> npt.NDArray[np.float64]:
    """USD per major unit of each currency in CURRENCIES."""
    rates = {c.currency: c.usd_per_unit for c in COUNTRIES}
    return np.array([rates[cur] for cur in CURRENCIES], dtype=np.float64)
