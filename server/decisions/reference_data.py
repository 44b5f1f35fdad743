"""The reference data features need besides the request: each country's clock and currency, USD
rates, and the issuer behind each BIN. The trainer records it in the approval bundle's manifest
(``extra["reference_data"]``), so serving computes features from the world the model was trained
on; a bundle without it cannot drive decisions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forestgate.errors import BundleError
from forestgate.payments.money import Money

FORMAT = 1


@dataclass(frozen=True, slots=True)
class ReferenceData:
    utc_offset_s: Mapping[str, int]  # country -> seconds east of UTC
    currency: Mapping[str, str]  # country -> ISO 4217
    usd_per_unit: Mapping[str, float]  # currency -> USD per major unit
    issuers: Mapping[str, str]  # BIN -> issuer id

    @classmethod
    def from_manifest(cls, extra: Mapping[str, Any], where: str) -> ReferenceData:
        """From a manifest's ``extra``; BundleError naming ``where`` when it is absent or bad."""
        data = extra.get("reference_data")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BundleError(
                f"{where}: manifest extra.reference_data (format {FORMAT}) is missing; "
                "retrain with `forestgate train` to serve decisions"
            )
        try:
            return cls(
                utc_offset_s={str(k): int(v) for k, v in data["utc_offset_s"].items()},
                currency={str(k): str(v) for k, v in data["currency"].items()},
                usd_per_unit={str(k): float(v) for k, v in data["usd_per_unit"].items()},
                issuers={str(k): str(v) for k, v in data["issuers"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(
                f"{where}: manifest extra.reference_data is malformed ({exc})"
            ) from None

    def issuer_id(self, bin8: str) -> str:
        """The BIN table's issuer, or the BIN itself as its own issuer (as training does)."""
        return self.issuers.get(bin8, "BIN" + bin8)

    def amount_usd(self, amount: Money) -> float | None:
        """The amount in USD, rounded to cents as the generator records it; None if no rate."""
        rate = self.usd_per_unit.get(amount.currency)
        if rate is None:
            return None
        # Python divides ints correctly rounded: the same float as float(amount.to_major()),
        # without a Decimal.
        major: float = amount.amount_minor / 10**amount.exponent
        return round(major * rate, 2)

    def local_time(self, ts_ms: int, country: str) -> dt.datetime | None:
        """Naive wall-clock time in ``country`` at ``ts_ms``; None for a country not known."""
        offset = self.utc_offset_s.get(country)
        if offset is None:
            return None
        return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ts_ms + offset * 1000)
