"""Time split, propensity weights, framework selection and calibration choice on tables whose
truth is known, and the errors a bad table gets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from forestgate.errors import InvalidInput
from forestgate.training.trainer import calibrate, train
from forestgate.training.trainer.evaluate import quality

FEATURES = ("x0", "x1", "x2")


def _table(n: int = 6_000, days: int = 30, seed: int = 5, signal: float = 2.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    x[rng.random(n) < 0.05, 2] = np.nan  # missing values must pass through
    logit = 1.5 + signal * x[:, 0] - x[:, 1]
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pa.table(
        {
            **{name: pa.array(x[:, j]) for j, name in enumerate(FEATURES)},
            "approved": pa.array(y),
            "propensity": pa.array(rng.uniform(0.05, 1.0, n)),
            "day": pa.array(np.sort(rng.integers(0, days, n))),
        }
    )


def test_time_split_covers_every_day_once() -> None:
    split = train.TimeSplit.of(120)
    assert (split.valid_from, split.test_from, split.days) == (72, 96, 120)
    masks = split.masks(np.arange(120))
    assert sum(m.astype(int) for m in masks.values()).tolist() == [1] * 120
    assert split.label("test") == "test (days 96-119)"


def test_weights_are_inverse_propensity_clipped_and_mean_one() -> None:
    table = _table()
    data = train.dataset("t", table, FEATURES, train.TimeSplit.of(30), label="approved")
    prop = table.column("propensity").to_numpy()
    assert data.weight == pytest.approx(np.minimum(1 / prop, train.MAX_WEIGHT))
    _, _, w = data.part("train")
    assert w.mean() == pytest.approx(1.0)


def test_select_keeps_the_lower_validation_log_loss_and_learns_the_signal() -> None:
    data = train.dataset("t", _table(), FEATURES, train.TimeSplit.of(30), label="approved")
    sel = train.select(data, train.CONFIGS["demo"], seed=1)
    assert {c.framework for c in sel.candidates} == set(train.FRAMEWORKS)
    assert sel.kept.valid.log_loss == min(c.valid.log_loss for c in sel.candidates)
    assert sel.kept.framework in sel.reason
    x, y, _ = data.part("test")
    assert quality(y, sel.kept.predict(x)).roc_auc > 0.8
    # The trimmed model (what gets compiled) scores exactly like the estimator.
    trimmed = train.trim(sel.kept)
    if sel.kept.framework == "xgboost":
        import xgboost as xgb

        direct = trimmed.predict(xgb.DMatrix(x, feature_names=list(FEATURES)))
    else:
        direct = trimmed.predict(x)
    assert direct == pytest.approx(sel.kept.predict(x), abs=1e-6)


def test_too_few_days_for_a_split_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"span 3 day.*at least 5"):
        train.TimeSplit.of(3)


def test_a_split_without_rows_is_named() -> None:
    table = _table(days=30)
    table = table.filter(pa.array(table.column("day").to_numpy() < 20))
    with pytest.raises(InvalidInput, match=r"split test \(days 24-29\) has no rows"):
        train.dataset("approval", table, FEATURES, train.TimeSplit.of(30), label="approved")


def test_a_label_with_one_class_is_named() -> None:
    table = _table()
    table = table.set_column(
        table.column_names.index("approved"), "approved", pa.array(np.ones(table.num_rows, bool))
    )
    with pytest.raises(InvalidInput, match=r"retry: label 'approved' has one class \(True\)"):
        train.dataset("retry", table, FEATURES, train.TimeSplit.of(30), label="approved")


def test_a_missing_feature_column_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"missing column.*x9"):
        train.dataset("t", _table(), (*FEATURES, "x9"), train.TimeSplit.of(30), label="approved")


def test_calibration_choice_fixes_a_miscalibrated_model() -> None:
    rng = np.random.default_rng(11)
    n = 20_000
    true_p = rng.uniform(0.02, 0.98, n)
    y = rng.random(n) < true_p
    # An overconfident model: right ranking, logit stretched 3x.
    logit = np.log(true_p / (1 - true_p))
    raw = 1 / (1 + np.exp(-3 * logit))
    choice = calibrate.choose(raw, y, np.ones(n), np.arange(n))
    assert set(choice.brier_by_method) == set(calibrate.METHODS)
    assert choice.method == min(choice.brier_by_method, key=choice.brier_by_method.__getitem__)
    fixed = choice.calibration.apply(raw)
    assert quality(y, fixed).ece < quality(y, raw).ece / 3


def test_calibration_needs_both_outcomes_in_each_half() -> None:
    y = np.r_[np.ones(50, bool), np.r_[np.zeros(25, bool), np.ones(25, bool)]]
    with pytest.raises(ValueError, match="both outcomes"):
        calibrate.choose(np.full(100, 0.5), y, np.ones(100), np.arange(100))
