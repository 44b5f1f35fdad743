"""Server format: number formats and small builders shared by the sections of server.md."""

from __future__ import annotations

from typing import Any

import report
from server_report import cell_key

Pooled = dict[str, dict[str, Any]]
ORDER = ("forestgate", "forestgate_off", "direct", "naive", "constant")


def us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v < 100_000 else f"{v / 1000:,.0f} ms"


def dur(v: float | None) -> str:
    """A latency with its unit, for prose."""
    if v is None:
        return "-"
    return f"{v:,.0f} us" if v < 100_000 else f"{v / 1000:,.0f} ms"


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """A markdown table; the first `left` columns are left-aligned, the rest right-aligned."""
    return [*report.table(header, rows, left=left), ""]


def para(*parts: str) -> list[str]:
    return ["".join(parts), ""]


def closed(pooled: Pooled, series: str, rows: int, c: int) -> dict[str, Any] | None:
    return pooled.get(cell_key(series, "closed", rows, c))


def cpu_per_call(p: dict[str, Any]) -> float:
    return (p["server_cpu_util"] or 0.0) / p["rps"] * 1e6 if p["rps"] else 0.0
