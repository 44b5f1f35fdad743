"""Logging (behaviour) policies with recorded propensities (docs/generator.md, "Logging
policies"): incumbent routing with epsilon exploration, cascades on technical declines, SCA
step-ups and customer retries, and each merchant's retry policy for merchant-initiated declines:
a fixed compliant schedule, randomised delays, or a legacy policy that breaks the network rules.

Compliant policies propose only what the guardrail should allow; the simulation still asks
``guardrail.check`` before sending and drops anything it denies. The legacy policy never asks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from forestgate.training.generator.horizon import DAY_S, HOUR_S
from forestgate.training.generator.routes import Routes

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

ROUTE_POLICY = "incumbent-eps-v1"
EPSILON = 0.07

# Retry kinds (attempts.retry_kind); "" for a first attempt.
KINDS: tuple[str, ...] = ("", "retry", "cascade", "cit_3ds", "customer", "new_card")
K_FIRST, K_RETRY, K_CASCADE, K_3DS, K_CUSTOMER, K_NEW_CARD = range(6)
# Who decided an attempt (attempts.retry_policy_id).
POLICIES: tuple[str, ...] = ("", "fixed-v1", "randomized-v1", "legacy", "cascade-v1", "customer")
P_NONE, P_FIXED, P_RANDOM, P_LEGACY, P_CASCADE, P_CUSTOMER = range(6)

# Randomised-delay grid (docs/generator.md, "Logging policies") and its base weights per decline
# family (feature extraction rebuilds the propensity of every candidate delay from them).
GRID_S = np.array(
    [300, HOUR_S, 6 * HOUR_S, DAY_S, 2 * DAY_S, 3 * DAY_S, 5 * DAY_S, 7 * DAY_S], dtype=np.int64
)
GRID_WEIGHTS = {
    "technical": np.array([6, 4, 2, 1, 0.5, 0.3, 0.2, 0.1]),
    "insufficient_funds": np.array([0.2, 0.3, 0.6, 2, 2, 2, 1.5, 1.2]),
    "other": np.array([0.3, 0.6, 1, 2, 2, 1.5, 1, 0.8]),
}
_FIXED_S = np.array([DAY_S, 2 * DAY_S, 4 * DAY_S], dtype=np.int64)  # 1 d, 3 d, 7 d after the first
LEGACY_EVERY_S = DAY_S
LEGACY_MAX = 12
RANDOM_MAX = 8
WINDOW_S = 14 * DAY_S


def incumbent(routes: Routes, eligible: B, local: B, cost_bps: F64) -> I64:
    """The incumbent rule: a local eligible route if any, else the cheapest eligible one."""
    big = 1e9
    score = np.where(eligible, cost_bps, big) - np.where(eligible & local, big / 2, 0.0)
    return np.asarray(np.argmin(score, axis=1), dtype=np.int64)


def choose_routes(
    rng: np.random.Generator, routes: Routes, eligible: B, local: B, cost_bps: F64
) -> tuple[I64, F64]:
    """Incumbent with epsilon-uniform exploration; returns the route and its propensity."""
    n = eligible.shape[0]
    best = incumbent(routes, eligible, local, cost_bps)
    n_el = eligible.sum(axis=1)
    explore = rng.random(n) < EPSILON
    u = rng.random(n)
    # The k-th eligible route, k uniform.
    k = np.minimum((u * n_el).astype(np.int64), np.maximum(n_el - 1, 0))
    cum = np.cumsum(eligible, axis=1)
    pick = np.argmax(cum > k[:, None], axis=1)
    route = np.where(explore, pick, best).astype(np.int64)
    prop = EPSILON / np.maximum(n_el, 1) + np.where(route == best, 1 - EPSILON, 0.0)
    return route, prop


def second_best(eligible: B, local: B, cost_bps: F64, exclude: I64, routes: Routes) -> I64:
    """The incumbent's choice among the eligible routes other than ``exclude`` (-1 if none)."""
    el = eligible.copy()
    el[np.arange(el.shape[0]), exclude] = False
    alt = incumbent(routes, el, local, cost_bps)
    return np.where(el.any(axis=1), alt, -1).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Delays:
    delay_s: I64
    propensity: F64


def random_delays(rng: np.random.Generator, family: list[str], earliest_s: I64) -> Delays:
    """Randomised delays from the grid, never before ``earliest_s`` (a MAC 24-30 wait)."""
    n = len(family)
    other = GRID_WEIGHTS["other"]
    w = np.stack([GRID_WEIGHTS.get(f, other) for f in family]) if n else np.zeros((0, 8))
    w = np.where(GRID_S[None, :] >= earliest_s[:, None], w, 0.0)
    none = w.sum(axis=1) == 0
    w[none, -1] = 1.0
    p = w / w.sum(axis=1, keepdims=True)
    cum = np.cumsum(p, axis=1)
    pick = np.minimum((cum < rng.random(n)[:, None]).sum(axis=1), 7)
    delay = np.maximum(GRID_S[pick], earliest_s)
    return Delays(delay_s=delay.astype(np.int64), propensity=p[np.arange(n), pick])


def fixed_delay(retries_so_far: I64, since_first_s: I64, earliest_s: I64) -> I64:
    """Fixed schedule 1 d / 3 d / 7 d after the first decline; -1 once it is exhausted."""
    idx = np.minimum(retries_so_far, _FIXED_S.size - 1)
    due = np.cumsum(_FIXED_S)[idx] - since_first_s
    delay = np.maximum(np.maximum(due, 60), earliest_s)
    return np.where(retries_so_far < _FIXED_S.size, delay, -1).astype(np.int64)
