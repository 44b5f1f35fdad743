"""Engine results: bench/engine.py's measurements of one model indexed for the report, and the
issue's targets judged on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FG = "forestgate (default options)"
RAW = "raw ctypes (same .so)"
CALL_TARGET_BATCHES = (1, 2, 4, 8, 16)
ROW_TARGET_BATCH = 256
ROW_TARGET_RATIO = 1.2
NOISY_CPU_SHARE = 0.9


def us(v: float) -> str:
    if not np.isfinite(v):
        return "-"
    if v >= 1000:
        return f"{v / 1000:.2f} ms"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(v: float) -> str:
    return f"{v:.2f}x"


class ModelView:
    """One model's results, indexed for the tables."""

    def __init__(self, name: str, r: dict[str, Any]) -> None:
        self.name = name
        self.r = r
        self.plan = r["plan"]
        self.engines = [e["name"] for e in r["engines"]]
        self.kind = {e["name"]: e["kind"] for e in r["engines"]}
        self.cells = {(c["engine"], c["batch"]): c for c in r["cells"]}
        self.vcells = {(c["engine"], c["batch"]): c for c in r["variant_cells"]}
        self.builds = {b["variant"]["key"]: b for b in self.plan["builds"]}
        self.auto = self.plan["auto"]
        self.batches = sorted({c["batch"] for c in r["cells"]})
        self.vbatches = sorted({c["batch"] for c in r["variant_cells"]})

    @property
    def competitors(self) -> list[str]:
        """Every other engine: not ForestGate itself, not the raw call of its own entry point."""
        return [e for e in self.engines if self.kind[e] != "forestgate" and e != RAW]

    def median(self, engine: str, b: int) -> float:
        c = self.cells.get((engine, b))
        return c["median_us"] if c else float("nan")

    def per_row(self, engine: str, b: int) -> float:
        return self.median(engine, b) / b

    def fastest(self, engines: list[str], b: int) -> tuple[str, float]:
        best = min(engines, key=lambda e: self.median(e, b))
        return best, self.median(best, b)

    def so_mb(self, key: str) -> float:
        return self.builds[key]["build"]["so_bytes"] / 1e6

    def vrow(self, key: str, b: int) -> float:
        c = self.vcells.get((key, b))
        return c["median_us"] / b if c else float("nan")

    def vtyp(self, key: str) -> float:
        """A variant's typical per-row time: the median of its per-row medians at b >= 16, which
        one disturbed cell cannot move much."""
        vals = [self.vrow(key, b) for b in self.vbatches if b >= 16]
        vals = [x for x in vals if np.isfinite(x)]
        return float(np.median(vals)) if vals else float("nan")

    def built(self) -> list[str]:
        return [k for k, b in self.builds.items() if "build" in b]


def targets(views: list[ModelView]) -> list[dict[str, Any]]:
    """Each target's ratio from the pooled medians, plus its range over the timing rounds (each
    round's ForestGate median / the fastest other engine's median in that same round)."""
    rows = []
    for v in views:
        if FG not in v.engines:
            continue
        cases = [(b, False) for b in CALL_TARGET_BATCHES if b in v.batches]
        if ROW_TARGET_BATCH in v.batches:
            cases.append((ROW_TARGET_BATCH, True))
        for b, per_row in cases:
            best, t = v.fastest(v.competitors, b)
            q = v.median(FG, b) / t
            ours = v.cells[(FG, b)]["round_medians_us"]
            others = [v.cells[(e, b)]["round_medians_us"] for e in v.competitors]
            by_round = [o / min(x[r] for x in others) for r, o in enumerate(ours)]
            if per_row:
                target = f"per row, b={b}: within {ROW_TARGET_RATIO}x of the fastest"
                met = q <= ROW_TARGET_RATIO
            else:
                target = f"per call, b={b}: faster than every other engine"
                met = q < 1.0
            rows.append(
                {
                    "model": v.name,
                    "target": target,
                    "ours_us": v.median(FG, b) / (b if per_row else 1),
                    "best_other": best,
                    "best_other_us": t / (b if per_row else 1),
                    "ratio": q,
                    "ratio_by_round": by_round,
                    "met": met,
                }
            )
    return rows
