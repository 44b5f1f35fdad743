"""Calibration maps: scikit-learn's isotonic and Platt fits reproduced to 1e-12 on a compiled
model's outputs, hand-computed values, NaN and the ends of [0, 1], and stored maps refused
with the field named."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from forestgate.compiler.calibration import from_sklearn
from forestgate.engine.calibration import LOGIT_EPS, MAX_BREAKPOINTS, Calibration, logit
from forestgate.errors import BundleError, InvalidInput
from tests.sources import Case, Rows

# Inside and outside the range the maps were fitted on, both ends, and values a float32
# sigmoid really returns at the extremes.
GRID = np.concatenate([np.linspace(-0.25, 1.25, 1501), [0.0, 1.0, 1e-45, 1e-30, 1 - 2**-24, 0.5]])


def held_out(case: Case, rows: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The compiled model's probabilities (float64, as training would hold them) and labels,
    split in a fitting half and a held-out half."""
    p = case.compiled.predict(rows.x).astype(np.float64)
    half = p.size // 2
    return p[:half], rows.binary[:half], p[half:], rows.binary[half:]


@pytest.mark.parametrize(
    "recipe", ["xgboost-json", "lightgbm-text", "sklearn-RandomForestClassifier-binary"]
)
def test_isotonic_fitted_by_sklearn_reproduces_its_predictions(
    compiled_case: Callable[[str], Case], rows: Rows, recipe: str
) -> None:
    from sklearn.isotonic import IsotonicRegression

    p_fit, y_fit, p_new, _ = held_out(compiled_case(recipe), rows)
    isotonic = IsotonicRegression(out_of_bounds="clip").fit(p_fit, y_fit)
    calibration = from_sklearn(isotonic)
    assert calibration.method == "isotonic"
    assert calibration.breakpoints == isotonic.X_thresholds_.size > 2
    for p in (p_new, GRID):
        got = calibration.apply(p)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, isotonic.predict(p), rtol=0, atol=1e-12)
    # the map does something: it is not the identity on these outputs
    assert np.max(np.abs(calibration.apply(p_new) - p_new)) > 0.01


@pytest.mark.parametrize("recipe", ["xgboost-json", "lightgbm-text"])
def test_platt_fitted_by_sklearn_reproduces_its_predictions(
    compiled_case: Callable[[str], Case], rows: Rows, recipe: str
) -> None:
    from sklearn.linear_model import LogisticRegression

    p_fit, y_fit, p_new, _ = held_out(compiled_case(recipe), rows)
    regression = LogisticRegression().fit(logit(p_fit).reshape(-1, 1), y_fit)
    calibration = from_sklearn(regression)
    assert (calibration.a, calibration.b) == (regression.coef_[0, 0], regression.intercept_[0])
    for p in (p_new, GRID[(GRID >= 0) & (GRID <= 1)]):
        expected = regression.predict_proba(logit(p).reshape(-1, 1))[:, 1]
        np.testing.assert_allclose(calibration.apply(p), expected, rtol=0, atol=1e-12)
    assert abs(calibration.a - 1.0) > 0.01 or abs(calibration.b) > 0.01


def test_isotonic_interpolates_and_clips_by_hand() -> None:
    calibration = Calibration.isotonic([0.2, 0.6, 0.8], [0.1, 0.5, 0.5])
    got = calibration.apply([0.0, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 1.0, -5.0, 7.0])
    np.testing.assert_allclose(
        got, [0.1, 0.1, 0.2, 0.3, 0.5, 0.5, 0.5, 0.5, 0.1, 0.5], rtol=0, atol=1e-15
    )
    single = Calibration.isotonic([0.3], [0.25])
    np.testing.assert_array_equal(single.apply([0.0, 0.3, 1.0]), [0.25, 0.25, 0.25])


def test_platt_by_hand() -> None:
    # logit(0.25) = -ln 3, so 2 * logit(0.25) = -ln 9 and the sigmoid gives 1 / (1 + 9).
    np.testing.assert_allclose(
        Calibration.platt(2.0, 0.0).apply([0.25, 0.5, 0.75]), [0.1, 0.5, 0.9], atol=1e-15
    )
    # a = 1, b = ln 3 multiplies the odds by 3: 0.25 (odds 1/3) -> 0.5.
    np.testing.assert_allclose(Calibration.platt(1.0, math.log(3)).apply([0.25]), [0.5], atol=1e-15)
    p = np.linspace(0.01, 0.99, 99)
    np.testing.assert_allclose(Calibration.platt(1.0, 0.0).apply(p), p, rtol=0, atol=1e-15)


def test_platt_at_zero_and_one_is_finite_and_ordered() -> None:
    calibration = Calibration.platt(1.5, -0.3)
    got = calibration.apply([0.0, 1e-45, 0.5, 1 - 2**-24, 1.0])
    assert np.all(np.isfinite(got))
    assert np.all((got >= 0) & (got <= 1))
    assert np.all(np.diff(got) >= 0)
    expected_ends = 1 / (1 + np.exp(-(1.5 * np.log(LOGIT_EPS / (1 - LOGIT_EPS)) - 0.3)))
    np.testing.assert_allclose(got[0], expected_ends, rtol=1e-9)
    # A steep map saturates without an overflow warning (warnings are errors here).
    steep = Calibration.platt(1e6, 0.0).apply([0.0, 0.4, 0.6, 1.0])
    np.testing.assert_array_equal(steep, [0.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize(
    "calibration",
    [Calibration.isotonic([0.1, 0.9], [0.2, 0.7]), Calibration.platt(0.8, 0.1)],
    ids=["isotonic", "platt"],
)
def test_apply_keeps_nan_and_shape(calibration: Calibration) -> None:
    p = np.array([[0.5, np.nan], [np.nan, 0.2]], dtype=np.float32)
    got = calibration.apply(p)
    assert got.shape == (2, 2)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(p))
    assert np.all((got[~np.isnan(got)] >= 0) & (got[~np.isnan(got)] <= 1))
    assert calibration.apply(np.empty(0)).shape == (0,)


@pytest.mark.parametrize(
    "calibration",
    [Calibration.isotonic([0.1, 0.5, 0.9], [0.0, 0.3, 1.0]), Calibration.platt(-0.5, 1e-3)],
    ids=["isotonic", "platt"],
)
def test_dict_round_trip_through_json(calibration: Calibration) -> None:
    text = json.dumps(calibration.to_dict(), allow_nan=False)
    again = Calibration.from_dict(json.loads(text), "here")
    assert again == calibration
    np.testing.assert_array_equal(again.apply(GRID), calibration.apply(GRID))


def _isotonic(**change: Any) -> dict[str, Any]:
    return {"method": "isotonic", "x": [0.1, 0.5, 0.9], "y": [0.05, 0.4, 0.95], **change}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([0.1, 0.2], "field 'calibration' must be an object or null"),
        ({"method": "beta", "a": 1}, "field 'calibration.method' is 'beta', expected one of"),
        ({"x": [0.1], "y": [0.2]}, "field 'calibration.method' is None"),
        (_isotonic(x=[0.1, 0.5, 0.5]), r"'calibration.x' is not strictly increasing \(x\[2\]"),
        (_isotonic(x=[0.1, 0.05, 0.9]), r"'calibration.x' is not strictly increasing \(x\[1\]"),
        (_isotonic(x=[0.1, float("nan"), 0.9]), r"'calibration.x' is not finite \(calibration"),
        (_isotonic(x=[0.1, float("inf"), 0.9]), r"'calibration.x' is not finite"),
        (_isotonic(y=[0.1, 0.2]), "'calibration.x' has 3 breakpoints but 'calibration.y' has 2"),
        (_isotonic(y=[0.1, 0.2, 1.5]), r"'calibration.y' is outside \[0, 1\] \(y\[2\] = 1.5\)"),
        (_isotonic(y=[-0.1, 0.2, 0.5]), r"'calibration.y' is outside \[0, 1\]"),
        (_isotonic(y=[0.1, 0.6, 0.5]), r"'calibration.y' is decreasing \(y\[2\] = 0.5"),
        (_isotonic(x=[], y=[]), "'calibration.x' must be a non-empty list"),
        (_isotonic(x="0.1 0.5 0.9"), "'calibration.x' must be a list of numbers"),
        (_isotonic(y=[0.1, True, 0.5]), "'calibration.y' must be a list of numbers"),
        (_isotonic(x=[[0.1], [0.5], [0.9]]), "'calibration.x' must be a list of numbers"),
        (
            _isotonic(x=list(range(MAX_BREAKPOINTS + 1)), y=[0.5] * (MAX_BREAKPOINTS + 1)),
            f"'calibration.x' has {MAX_BREAKPOINTS + 1} breakpoints, more than the limit",
        ),
        ({"method": "isotonic", "x": [0.5]}, "field 'calibration.y' is missing"),
        (_isotonic(a=1.0), "field 'calibration.a' is not known for method 'isotonic'"),
        ({"method": "platt", "a": float("nan"), "b": 0.0}, "'calibration.a' is nan, expected"),
        ({"method": "platt", "a": 1.0, "b": float("-inf")}, "'calibration.b' is -inf"),
        ({"method": "platt", "a": "1.0", "b": 0.0}, "'calibration.a' must be a number, got str"),
        ({"method": "platt", "a": 1.0}, "field 'calibration.b' is missing"),
    ],
)
def test_stored_map_is_refused_naming_the_field(data: object, message: str) -> None:
    with pytest.raises(BundleError, match=message) as raised:
        Calibration.from_dict(data, "models/a/1/manifest.json")
    assert str(raised.value).startswith("models/a/1/manifest.json: field 'calibration")


def test_constructors_raise_invalid_input() -> None:
    with pytest.raises(InvalidInput, match=r"'calibration.x' is not strictly increasing"):
        Calibration.isotonic([0.5, 0.5], [0.1, 0.2])
    with pytest.raises(InvalidInput, match=r"'calibration.y' is decreasing"):
        Calibration.isotonic(np.array([0.1, 0.2]), np.array([0.3, 0.2]))
    with pytest.raises(InvalidInput, match=r"'calibration.b' is inf"):
        Calibration.platt(1.0, math.inf)
    with pytest.raises(InvalidInput, match=r"'calibration.a' is nan"):
        Calibration.platt(np.float32("nan"), 0.0)
    assert Calibration.platt(np.int64(2), np.float32(0.5)).to_dict() == {
        "method": "platt",
        "a": 2.0,
        "b": 0.5,
    }
    with pytest.raises(InvalidInput, match=r"'calibration.x' must hold numbers"):
        Calibration.isotonic(np.array(["a", "b"]), [0.1, 0.2])


def test_from_sklearn_refuses_what_it_cannot_reproduce() -> None:
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LinearRegression, LogisticRegression

    rng = np.random.default_rng(0)
    p = rng.random(400)
    y = (rng.random(400) < p).astype(int)
    with pytest.raises(InvalidInput, match=r"IsotonicRegression is not fitted"):
        from_sklearn(IsotonicRegression(out_of_bounds="clip"))
    with pytest.raises(InvalidInput, match=r"out_of_bounds='nan'; a served map clips"):
        from_sklearn(IsotonicRegression().fit(p, y))
    falling = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(p, 1 - y)
    with pytest.raises(InvalidInput, match=r"'calibration.y' is decreasing"):
        from_sklearn(falling)
    two_columns = LogisticRegression().fit(np.c_[logit(p), p], y)
    with pytest.raises(InvalidInput, match=r"fitted on one column, logit\(p\); got coef_ of"):
        from_sklearn(two_columns)
    with pytest.raises(InvalidInput, match=r"LogisticRegression is not fitted"):
        from_sklearn(LogisticRegression())
    with pytest.raises(InvalidInput, match=r"got sklearn\.linear_model\._base\.LinearRegression"):
        from_sklearn(LinearRegression().fit(p.reshape(-1, 1), y))


def test_logit_clips_the_ends_and_keeps_nan() -> None:
    z = logit([0.0, 0.5, 1.0, np.nan])
    assert z[1] == 0.0
    # 1 - 1e-15 rounds to 1 - 1.11e-15 in float64, so the ends are not exact opposites.
    assert z[0] == pytest.approx(math.log(LOGIT_EPS), rel=1e-3)
    assert z[2] == pytest.approx(-math.log(LOGIT_EPS), rel=1e-3)
    assert math.isnan(z[3])
