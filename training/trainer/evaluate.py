"""Predictive quality of a probability model: ranking, calibration and the cost-weighted
break-even threshold (docs/evaluation.md, "Predictive quality" and "Cost-weighted threshold").

Every function takes plain arrays (labels, probabilities, optional weights) so the same numbers
back the report, the manifest's training metrics and the tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn import metrics

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

ECE_BINS = 15  # equal-mass bins, as docs/evaluation.md, "Predictive quality" suggests (15-20)
_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Quality:
    """Ranking and calibration of one set of predictions against outcomes."""

    count: int
    positive_rate: float
    mean_prediction: float
    roc_auc: float
    pr_auc_decline: float  # declines are the rare class, so PR is reported with them as positive
    log_loss: float
    brier: float
    ece: float
    mce: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checked(y: object, p: object, w: object | None) -> tuple[B, F64, F64]:
    labels = np.asarray(y, dtype=np.bool_).ravel()
    probs = np.asarray(p, dtype=np.float64).ravel()
    if labels.size != probs.size:
        raise ValueError(f"labels ({labels.size}) and predictions ({probs.size}) differ in length")
    if labels.size == 0:
        raise ValueError("no rows to evaluate")
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
        raise ValueError("predictions must be probabilities in [0, 1]")
    weights = np.ones(labels.size) if w is None else np.asarray(w, dtype=np.float64).ravel()
    if weights.size != labels.size or not np.all(np.isfinite(weights)) or weights.min() < 0:
        raise ValueError("weights must be finite, non-negative and one per row")
    return labels, probs, weights


def reliability(
    y: object, p: object, w: object | None = None, *, bins: int = ECE_BINS
) -> tuple[F64, F64, F64]:
    """Per equal-mass bin of the predictions: mean prediction, observed rate, weight share."""
    labels, probs, weights = _checked(y, p, w)
    order = np.argsort(probs, kind="stable")
    groups = [g for g in np.array_split(order, min(bins, labels.size)) if g.size]
    mean_p = np.array([np.average(probs[g], weights=weights[g] + _EPS) for g in groups])
    rate = np.array([np.average(labels[g], weights=weights[g] + _EPS) for g in groups])
    share = np.array([weights[g].sum() for g in groups])
    return mean_p, rate, share / max(share.sum(), _EPS)


def quality(y: object, p: object, w: object | None = None) -> Quality:
    labels, probs, weights = _checked(y, p, w)
    both = labels.any() and not labels.all()
    mean_p, rate, share = reliability(labels, probs, weights)
    gap = np.abs(mean_p - rate)
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    return Quality(
        count=int(labels.size),
        positive_rate=float(np.average(labels, weights=weights)),
        mean_prediction=float(np.average(probs, weights=weights)),
        roc_auc=float(metrics.roc_auc_score(labels, probs, sample_weight=weights))
        if both
        else float("nan"),
        pr_auc_decline=float(
            metrics.average_precision_score(~labels, 1 - probs, sample_weight=weights)
        )
        if both
        else float("nan"),
        log_loss=float(metrics.log_loss(labels, clipped, sample_weight=weights, labels=[0, 1])),
        brier=float(np.average((probs - labels) ** 2, weights=weights)),
        ece=float(np.sum(gap * share)),
        mce=float(gap.max()),
    )


@dataclass(frozen=True, slots=True)
class BreakEven:
    """Attempt iff p > t_i = cost_i / net_value_i, each row with its own money (docs/evaluation.md,
    "Cost-weighted threshold")."""

    rows: int
    scale: float
    attempted_share: float
    precision: float  # of "approve" among attempted rows
    recall: float  # share of approvals that were attempted
    value_captured: float  # realised net value / the net value of attempting exactly the approvals
    mean_threshold: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def break_even(
    y: object, p: object, *, net_value: F64, attempt_cost: F64, scale: float = 1.0
) -> BreakEven:
    """Precision and recall of "approve" at each row's break-even threshold (times ``scale``,
    to show what moving away from it costs), and the share of the perfect-foresight value it
    captures. Rows with no positive net value are never worth attempting."""
    labels, probs, _ = _checked(y, p, None)
    value = np.asarray(net_value, dtype=np.float64)
    cost = np.asarray(attempt_cost, dtype=np.float64)
    threshold = np.where(value > 0, scale * cost / np.maximum(value, _EPS), np.inf)
    act = probs > threshold
    realised = np.where(act, np.where(labels, value, 0.0) - cost, 0.0).sum()
    perfect = np.where(labels & (value > cost), value - cost, 0.0).sum()
    hits = (act & labels).sum()
    finite = threshold[np.isfinite(threshold)]
    return BreakEven(
        rows=int(labels.size),
        scale=scale,
        attempted_share=float(act.mean()),
        precision=float(hits / act.sum()) if act.any() else float("nan"),
        recall=float(hits / labels.sum()) if labels.any() else float("nan"),
        value_captured=float(realised / perfect) if perfect > 0 else float("nan"),
        mean_threshold=float(finite.mean()) if finite.size else float("nan"),
    )


def curves(y: object, p: object, w: object | None = None) -> dict[str, F64]:
    """ROC (approval positive) and PR (decline positive) curves for plotting."""
    labels, probs, weights = _checked(y, p, w)
    fpr, tpr, _ = metrics.roc_curve(labels, probs, sample_weight=weights)
    precision, recall, _ = metrics.precision_recall_curve(~labels, 1 - probs, sample_weight=weights)
    return {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall}
