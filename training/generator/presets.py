"""Generator presets: how big a synthetic world is and when it runs, validated before anything
is generated.

``small`` is sized for tests (about 60k attempts in a few seconds); ``default`` is the 1M-attempt
world of docs/generator.md, "Goals". Sizes scale together so per-entity statistics (attempts per
card, per merchant, per issuer-route pair) stay comparable between the two.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from forestgate.errors import InvalidInput

# numpy's SeedSequence takes any non-negative integer; 2**63 keeps it an int64 in the output.
MAX_SEED = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    attempts: int  # target; the realised count varies by about a percent
    cards: int
    merchants: int
    issuers: int
    bins: int
    start: dt.date
    days: int
    # Chunk length of the event loop: issuer velocity and scheme counters see every decided attempt
    # before the chunk; shorter chunks are more exact and slower.
    chunk_s: int


PRESETS: dict[str, Preset] = {
    "small": Preset(
        name="small",
        attempts=60_000,
        cards=16_000,
        merchants=120,
        issuers=90,
        bins=400,
        start=dt.date(2025, 8, 4),
        days=120,
        chunk_s=3_600,
    ),
    "default": Preset(
        name="default",
        attempts=1_000_000,
        cards=200_000,
        merchants=500,
        issuers=300,
        bins=1_500,
        start=dt.date(2025, 8, 4),
        days=120,
        chunk_s=3_600,
    ),
}


def preset(name: object) -> Preset:
    """The preset called ``name``, or InvalidInput naming the field and the choices."""
    if not isinstance(name, str) or name not in PRESETS:
        raise InvalidInput(f"preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]


def seed(value: object) -> int:
    """A seed as a non-negative int (decimal text accepted), or InvalidInput naming the field."""
    if isinstance(value, bool):
        raise InvalidInput(f"seed: expected a non-negative integer, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or not text.isascii():
            raise InvalidInput(f"seed: expected a non-negative integer, got {value!r}")
        value = int(text)
    if not isinstance(value, int) or value < 0 or value > MAX_SEED:
        raise InvalidInput(f"seed: expected an integer from 0 to {MAX_SEED}, got {value!r}")
    return value
