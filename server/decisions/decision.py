"""What the decision core takes and gives: its configuration, a decision and its route results,
an outcome, and why the incumbent answered instead of the models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from forestgate import errors
from forestgate.server.decisions.advice import Advice
from forestgate.server.decisions.value import Economics, RoutePrice

# Errors after which the incumbent answers: the call itself was fine, the models could not help.
FALLBACK_ERRORS = (
    errors.NotFound, errors.Unavailable, errors.DeadlineExpired, errors.Overloaded,
    errors.BundleError,
)  # fmt: skip


class FeaturesUnavailable(errors.Unavailable):
    """The online state cannot give a feature this call needs (a decline it never observed)."""


class RouteResult(NamedTuple):
    """One route's answer (a NamedTuple for the reason RoutePrice is one)."""

    route_id: str
    p_approve: float  # NaN when the incumbent answered
    net_value_minor: int
    price: RoutePrice


@dataclass(frozen=True, slots=True)
class Decision:
    authorization_id: str
    chosen_route: str
    routes: tuple[RouteResult, ...]  # best first
    retry: Advice | None
    models: tuple[tuple[str, str], ...]
    fallback_reason: str = ""  # empty: the models answered


@dataclass(frozen=True, slots=True)
class Outcome:
    authorization_id: str
    approved: bool
    response_code: str
    merchant_advice_code: str | None
    route_id: str  # empty: the route Score chose


@dataclass(frozen=True, slots=True)
class DecisionConfig:
    economics: Economics
    model_share: float  # of the call's remaining deadline the models may use
    budget_us: int  # the models' budget when the call has no deadline


def ranked(
    p_now: Mapping[str, float], prices: Mapping[str, RoutePrice], value: int
) -> tuple[RouteResult, ...]:
    """Routes by expected net value, best first (ties by route id)."""
    results = []
    for route_id, p in p_now.items():
        price = prices[route_id]
        results.append(RouteResult(route_id, p, price.net(p, value), price))
    return tuple(sorted(results, key=lambda v: (-v.net_value_minor, v.route_id)))


def fallback_reason(exc: errors.ForestGateError) -> str:
    """The metric label of why the incumbent answered."""
    reasons: dict[type[errors.ForestGateError], str] = {
        errors.DeadlineExpired: "deadline",
        errors.Overloaded: "overloaded",
        errors.NotFound: "model_not_loaded",
        errors.BundleError: "model_not_loaded",
        FeaturesUnavailable: "features",
    }
    return reasons.get(type(exc), "unavailable")
