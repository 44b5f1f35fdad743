"""Calibration maps from fitted scikit-learn estimators, for training (the map itself, and
applying it, live in forestgate.engine.calibration, which serving imports without scikit-learn)."""

from __future__ import annotations

from forestgate.engine.calibration import Calibration
from forestgate.errors import InvalidInput


def from_sklearn(estimator: object) -> Calibration:
    """From a fitted `IsotonicRegression` (fit it on float64 probabilities: one fitted on
    float32 predicts in float32), or a fitted `LogisticRegression` on one column that holds
    `logit(p)` (the Platt map; its classes_[1] is the positive class)."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    if isinstance(estimator, IsotonicRegression):
        if not hasattr(estimator, "X_thresholds_"):
            raise InvalidInput("IsotonicRegression is not fitted")
        if estimator.out_of_bounds != "clip":
            raise InvalidInput(
                f"IsotonicRegression has out_of_bounds={estimator.out_of_bounds!r}; a "
                "served map clips, so fit it with out_of_bounds='clip'"
            )
        return Calibration.isotonic(estimator.X_thresholds_, estimator.y_thresholds_)
    if isinstance(estimator, LogisticRegression):
        if not hasattr(estimator, "coef_"):
            raise InvalidInput("LogisticRegression is not fitted")
        if estimator.coef_.shape != (1, 1) or len(estimator.classes_) != 2:
            raise InvalidInput(
                "LogisticRegression must be binary and fitted on one column, logit(p); got "
                f"coef_ of shape {list(estimator.coef_.shape)} and "
                f"{len(estimator.classes_)} classes"
            )
        return Calibration.platt(float(estimator.coef_[0, 0]), float(estimator.intercept_[0]))
    raise InvalidInput(
        "expected a fitted sklearn IsotonicRegression or LogisticRegression, got "
        f"{type(estimator).__module__}.{type(estimator).__name__}"
    )
