"""Evaluation metrics against sklearn and against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from forestgate.training.trainer.evaluate import break_even, curves, quality, reliability


def _sample(n: int = 4_000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.99, n)
    y = rng.random(n) < p
    return y, p


def test_quality_matches_sklearn() -> None:
    y, p = _sample()
    w = np.random.default_rng(1).uniform(0.5, 2.0, y.size)
    q = quality(y, p, w)
    assert q.count == y.size
    assert q.roc_auc == pytest.approx(metrics.roc_auc_score(y, p, sample_weight=w))
    assert q.pr_auc_decline == pytest.approx(
        metrics.average_precision_score(~y, 1 - p, sample_weight=w)
    )
    assert q.log_loss == pytest.approx(metrics.log_loss(y, p, sample_weight=w))
    assert q.brier == pytest.approx(metrics.brier_score_loss(y, p, sample_weight=w))
    assert q.positive_rate == pytest.approx(np.average(y, weights=w))


def test_ece_by_hand() -> None:
    # Two equal-mass bins: predictions 0.2 (observed 0.5) and 0.8 (observed 1.0).
    y = np.array([0, 1, 1, 1], dtype=bool)
    p = np.array([0.2, 0.2, 0.8, 0.8])
    q = quality(y, p)
    mean_p, rate, share = reliability(y, p, bins=2)
    assert mean_p == pytest.approx([0.2, 0.8])
    assert rate == pytest.approx([0.5, 1.0])
    assert share == pytest.approx([0.5, 0.5])
    # With 15 bins each row is its own bin: |0.2-0| + |0.2-1| + 2*|0.8-1|, over 4 rows.
    assert q.ece == pytest.approx((0.2 + 0.8 + 0.2 + 0.2) / 4)
    assert q.mce == pytest.approx(0.8)


def test_calibrated_predictions_have_small_ece_and_shifted_ones_do_not() -> None:
    y, p = _sample(20_000)
    assert quality(y, p).ece < 0.02
    assert quality(y, np.clip(p + 0.1, 0, 1)).ece > 0.05


def test_break_even_by_hand() -> None:
    # value 10, cost 1 -> threshold 0.1; value 2, cost 1 -> 0.5; value 0 -> never attempted.
    y = np.array([True, False, True, True])
    p = np.array([0.3, 0.3, 0.4, 0.9])
    value = np.array([10.0, 10.0, 2.0, 0.0])
    cost = np.array([1.0, 1.0, 1.0, 1.0])
    be = break_even(y, p, net_value=value, attempt_cost=cost)
    # Attempted: rows 0 and 1 (p 0.3 > 0.1); row 2 (0.4 < 0.5) and row 3 (no value) are not.
    assert be.attempted_share == pytest.approx(0.5)
    assert be.precision == pytest.approx(0.5)
    assert be.recall == pytest.approx(1 / 3)
    # Realised (10-1) + (0-1) = 8; perfect foresight attempts rows 0 and 2: 9 + 1 = 10.
    assert be.value_captured == pytest.approx(0.8)
    assert be.mean_threshold == pytest.approx((0.1 + 0.1 + 0.5) / 3)


def test_curves_are_monotone_and_bounded() -> None:
    y, p = _sample()
    c = curves(y, p)
    assert np.all(np.diff(c["fpr"]) >= 0) and np.all(np.diff(c["tpr"]) >= 0)
    assert c["fpr"][-1] == pytest.approx(1.0) and c["tpr"][-1] == pytest.approx(1.0)
    assert c["precision"].min() >= 0 and c["precision"].max() <= 1


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([1, 0], [0.5], "differ in length"),
        ([], [], "no rows"),
        ([1, 0], [0.5, 1.5], "probabilities"),
        ([1, 0], [0.5, float("nan")], "probabilities"),
    ],
)
def test_bad_inputs_say_what_is_wrong(y: list[int], p: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quality(np.array(y, dtype=bool), np.array(p))
