"""Calibration fitting: isotonic or Platt, chosen on validation data the model never saw.

The validation period is split in time into two halves; each method is fitted on one half and
scored (weighted Brier) on the other, both ways round. The method with the lower mean
out-of-half Brier wins and is refitted on the whole validation period. The map itself is the
compiler's ``Calibration``, so the server applies exactly what was chosen here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from forestgate.compiler.calibration import from_sklearn
from forestgate.engine.calibration import Calibration

F64 = npt.NDArray[np.float64]
METHODS = ("isotonic", "platt")


@dataclass(frozen=True, slots=True)
class Choice:
    calibration: Calibration
    method: str
    brier_by_method: dict[str, float]  # mean out-of-half Brier on validation


def _logit(p: F64) -> F64:
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(q / (1 - q))


def fit(method: str, p: F64, y: npt.NDArray[np.bool_], w: F64) -> Calibration:
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(p, y.astype(np.float64), sample_weight=w)
        return from_sklearn(iso)
    if method == "platt":
        lr = LogisticRegression(C=1e6, max_iter=1_000)
        lr.fit(_logit(p)[:, None], y.astype(np.int64), sample_weight=w)
        return from_sklearn(lr)
    raise ValueError(f"calibration method: expected one of {METHODS}, got {method!r}")


def choose(p: F64, y: npt.NDArray[np.bool_], w: F64, ts_order: npt.NDArray[np.int64]) -> Choice:
    """Pick the method by two-fold, time-split cross-fitting on validation, then refit it."""
    order = np.argsort(ts_order, kind="stable")
    halves = np.array_split(order, 2)
    if any(np.unique(y[h]).size < 2 for h in halves):
        raise ValueError("calibration: each half of the validation period needs both outcomes")
    scores: dict[str, float] = {}
    for method in METHODS:
        briers = []
        for fit_on, score_on in ((halves[0], halves[1]), (halves[1], halves[0])):
            cal = fit(method, p[fit_on], y[fit_on], w[fit_on])
            q = cal.apply(p[score_on])
            briers.append(float(np.average((q - y[score_on]) ** 2, weights=w[score_on])))
        scores[method] = float(np.mean(briers))
    best = min(METHODS, key=lambda m: scores[m])
    return Choice(calibration=fit(best, p, y, w), method=best, brier_by_method=scores)
