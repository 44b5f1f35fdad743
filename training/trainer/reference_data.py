"""The reference data the decision API needs besides the model: each country's clock and
currency, USD rates, and the BIN table's issuer ids. The trainer records them in the approval and
retry manifests (``extra["reference_data"]``), so the server computes every feature exactly as
training did, from the same world, and a bundle carries everything its features depend on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from forestgate.training.generator import countries
from forestgate.training.trainer.features import utc_offsets

FORMAT = 1


def reference_data(data_dir: Path) -> dict[str, Any]:
    """A JSON object: utc_offset_s and currency per country, usd_per_unit per currency, and the
    issuer id of every BIN of the data set (bins.parquet)."""
    bins = pq.read_table(data_dir / "bins.parquet", columns=["bin8", "issuer_id"]).to_pydict()
    return {
        "format": FORMAT,
        "utc_offset_s": utc_offsets(data_dir),
        "currency": {c.code: c.currency for c in countries.COUNTRIES},
        "usd_per_unit": {c.currency: c.usd_per_unit for c in countries.COUNTRIES},
        "issuers": dict(zip(bins["bin8"], bins["issuer_id"], strict=True)),
    }
