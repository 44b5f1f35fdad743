"""The counts an online state holds for one request, as the feature builder reads them, and the
keys they are counted under; every backend (memory, Redis) produces these same values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from forestgate.errors import InvalidInput
from forestgate.payments.codes import Family
from forestgate.payments.featurespec import Request

# (attempts, approved) of one rate key in the 7 d before the anchor.
Counts = tuple[int, int]


@dataclass(frozen=True, slots=True)
class CardCounts:
    """A card's history as its features read it at one anchor: the window counts of its attempts
    in (anchor - window, anchor], and its running totals over everything observed."""

    attempts_24h: int = 0
    declines_24h: int = 0
    attempts_7d: int = 0
    declines_7d: int = 0
    approvals: int = 0
    approved_usd: float = 0.0
    last_approval_ms: int | None = None
    last_nsf_ms: int | None = None
    last_recovery_ms: int | None = None
    recoveries: int = 0


class RouteCounts(NamedTuple):
    """The 7 d counts of one route's rate keys: the route, issuer x route and BIN x route.

    A NamedTuple, immutable like the dataclasses here but built in half the time: a Score
    builds one per candidate route, and a frozen dataclass pays ~0.1 us per field to set it."""

    route: Counts = (0, 0)
    issuer_route: Counts = (0, 0)
    bin_route: Counts = (0, 0)


@dataclass(frozen=True, slots=True)
class Outcome:
    """An answer as the state keeps it: its decline family, Visa category and whether it was an
    insufficient-funds decline (what a recovery follows)."""

    family: Family
    visa_category: int | None
    nsf: bool


@dataclass(frozen=True, slots=True)
class DeclineRecord:
    """What a retry of an observed decline needs of it and of its payment as of that decline."""

    ts_ms: int
    family: Family
    code: str
    visa_category: int | None
    advice: str | None
    attempts_so_far: int
    first_decline_ms: int | None


def route_keys(request: Request, route_id: str) -> tuple[tuple[str, ...], ...]:
    """The rate keys of ``request`` on ``route_id``: route, issuer x route, BIN x route."""
    return (
        ("route", route_id),
        ("issuer_route", request.issuer_id, route_id),
        ("bin_route", request.bin8, route_id),
    )


def merchant_key(request: Request) -> tuple[str, ...]:
    return ("merchant", request.merchant_id)


def rate_keys(request: Request, route_id: str) -> tuple[tuple[str, ...], ...]:
    """Every rate key an attempt on ``route_id`` counts toward: the route keys, then merchant."""
    return (*route_keys(request, route_id), merchant_key(request))


def missing_decline(attempt_id: int) -> InvalidInput:
    return InvalidInput(f"attempt {attempt_id} is not an observed decline (or it expired)")


__all__ = [
    "CardCounts",
    "Counts",
    "DeclineRecord",
    "Outcome",
    "RouteCounts",
    "merchant_key",
    "missing_decline",
    "rate_keys",
    "route_keys",
]
