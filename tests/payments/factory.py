"""Builders for the payments tests: attempts, actions and rules files with one change."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from forestgate.payments.codes import default_rules_path
from forestgate.payments.economics import default_routes_path
from forestgate.payments.guardrail import Action, Attempt, History, Rules

T0 = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.UTC)  # after the Visa 15 -> 20 change
CARD = "par:V0010013"
MERCHANT = "m-001"
SECOND = dt.timedelta(seconds=1)


def attempt(
    at: dt.datetime = T0,
    code: str = "05",
    *,
    network: str = "visa",
    mac: str | None = None,
    approved: bool = False,
    amount: int = 1000,
    currency: str = "USD",
    card: str = CARD,
    merchant: str = MERCHANT,
    route: str = "A-US",
    **extra: Any,
) -> Attempt:
    return Attempt(
        at=at,
        card_key=card,
        merchant_id=merchant,
        amount_minor=amount,
        currency=currency,
        network=network,
        response_code="00" if approved and code == "05" else code,
        merchant_advice_code=mac,
        approved=approved,
        route=route,
        **extra,
    )


def action(
    kind: str = "retry",
    at: dt.datetime = T0 + dt.timedelta(hours=1),
    *,
    amount: int = 1000,
    currency: str = "USD",
    route: str = "A-US",
    **extra: Any,
) -> Action:
    return Action(kind=kind, at=at, route=route, amount_minor=amount, currency=currency, **extra)


def history(*attempts: Attempt) -> History:
    return History(CARD, MERCHANT, tuple(attempts))


def retries(first: dt.datetime, count: int, every: dt.timedelta, **kwargs: Any) -> list[Attempt]:
    """``count`` declined attempts from ``first``, ``every`` apart."""
    return [attempt(first + i * every, **kwargs) for i in range(count)]


def edited(tmp_path: Path, source: Path, *edits: tuple[str, str], name: str = "rules.yaml") -> Path:
    """A copy of ``source`` with each (regex, replacement) applied exactly once."""
    text = source.read_text(encoding="utf-8")
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
        assert count == 1, f"pattern not found: {pattern}"
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rules_with(tmp_path: Path, *edits: tuple[str, str]) -> Rules:
    return Rules.load(edited(tmp_path, default_rules_path(), *edits))


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


# Rules edits the tests share.
LOOSE_BUDGET = (
    (r"internal_max_retries:\n    - \{value: 8,", "internal_max_retries:\n    - {value: 1000,"),
    (r"internal_window_days:\n    - \{value: 14,", "internal_window_days:\n    - {value: 400,"),
)

ROUTES = default_routes_path()
