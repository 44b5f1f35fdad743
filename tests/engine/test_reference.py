"""Reference distributions: what fit records per column, PSI against a hand-computed example,
JSON round trips without NaN, and stored distributions refused with the field named."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from forestgate.engine.reference import (
    PSI_EPSILON,
    QUANTILE_LEVELS,
    Distribution,
    Reference,
    psi,
)
from forestgate.errors import BundleError, InvalidInput
from tests.sources import NUM_FEATURES, Rows


def test_psi_matches_a_hand_computed_example() -> None:
    # Bins: v <= 1, 1 < v <= 2, v > 2, and missing; expected shares 0.2, 0.5, 0.2, 0.1.
    expected = Distribution(100, 0.1, None, (1.0, 2.0), (0.2, 0.5, 0.2))
    # Actual: 1 of 10 in the first bin (0.1), 5 in the second (2.0 sits on an edge and belongs
    # to the bin it closes; 1.0000001 is above the first edge), 4 in the last (+inf among them),
    # none missing (an empty bin counts as PSI_EPSILON = 1e-4).
    actual = [0.5, 1.0000001, 1.5, 1.2, 1.9, 2.0, 2.5, 3.0, 9.0, np.inf]
    # (0.1-0.2)ln(0.1/0.2) + 0 + (0.4-0.2)ln(0.4/0.2) + (1e-4-0.1)ln(1e-4/0.1)
    #   = 0.1 ln 2 + 0.2 ln 2 + 0.0999 ln 1000 = 0.2079442 + 0.6900848
    assert PSI_EPSILON == 1e-4
    assert psi(expected, actual) == pytest.approx(0.8980289065, abs=1e-9)
    assert psi(expected, actual) == pytest.approx(0.3 * math.log(2) + 0.0999 * math.log(1000))
    # -inf and NaN land in the first and the missing bin.
    moved = [-np.inf, 1.5, 1.5, 1.5, 1.5, 1.5, 2.5, 2.5, np.nan, 1.0]
    assert psi(expected, moved) == pytest.approx(0.0, abs=1e-15)


def test_psi_of_the_training_data_is_zero_and_a_shift_is_large(rows: Rows) -> None:
    scores = np.nan_to_num(rows.x[:, 0]) * 0.1 + 0.5
    reference = Reference.fit(rows.x, scores, [f"f{i}" for i in range(NUM_FEATURES)])
    for j in range(NUM_FEATURES):
        assert psi(reference.features[j], rows.x[:, j]) == 0.0
    assert psi(reference.score, scores) == 0.0
    assert psi(reference.feature("f0"), rows.x[:, 0] + 1.0) > 0.25
    half = rows.x[:, 1].copy()
    half[: half.size // 2] = np.nan
    assert psi(reference.feature("f1"), half) > 0.25  # missingness shifting is drift too
    with pytest.raises(InvalidInput, match="no values"):
        psi(reference.score, [])


def test_fit_records_quantiles_missing_share_and_bins(rows: Rows) -> None:
    names = [f"f{i}" for i in range(NUM_FEATURES)]
    scores = np.linspace(0, 1, rows.x.shape[0])
    reference = Reference.fit(rows.x, scores, names)
    assert reference.feature_names == tuple(names)
    column = rows.x[:, 2].astype(np.float64)
    dist = reference.feature("f2")
    finite = column[np.isfinite(column)]
    assert dist.count == column.size
    assert dist.missing_share == np.isnan(column).mean() > 0
    assert dist.quantiles is not None and len(dist.quantiles) == QUANTILE_LEVELS
    np.testing.assert_array_equal(dist.quantiles, np.quantile(finite, np.linspace(0, 1, 101)))
    assert dist.quantiles[0] == finite.min() and dist.quantiles[-1] == finite.max()
    # ~30% exact zeros in column 2: several deciles coincide, the edges do not repeat.
    assert len(dist.bin_edges) < 9 and 0.0 in dist.bin_edges
    assert np.all(np.diff(dist.bin_edges) > 0)
    assert len(dist.bin_shares) == len(dist.bin_edges) + 1
    assert sum(dist.bin_shares) + dist.missing_share == pytest.approx(1.0, abs=1e-12)
    assert reference.score.missing_share == 0.0
    assert reference.score.bin_shares == pytest.approx([0.1] * 10, abs=1e-3)


def test_columns_without_finite_values_stay_json_safe() -> None:
    x = np.array([[np.nan, np.inf], [np.nan, -np.inf], [np.nan, 1.0]], dtype=np.float32)
    reference = Reference.fit(x, [0.1, 0.2, np.nan], ["gone", "infinite"])
    gone, infinite = reference.features
    assert (gone.quantiles, gone.missing_share, gone.bin_shares) == (None, 1.0, (0.0,))
    assert infinite.quantiles == (1.0,) * QUANTILE_LEVELS
    assert infinite.bin_edges == (1.0,)
    assert infinite.bin_shares == pytest.approx((2 / 3, 1 / 3))  # -inf and 1.0; +inf
    assert reference.score.missing_share == pytest.approx(1 / 3)
    text = json.dumps(reference.to_dict(), allow_nan=False)
    assert Reference.from_dict(json.loads(text), "here") == reference


def test_round_trip_through_json(rows: Rows) -> None:
    names = [f"f{i}" for i in range(NUM_FEATURES)]
    reference = Reference.fit(rows.x, rows.regression, names)
    text = json.dumps(reference.to_dict(), allow_nan=False)
    again = Reference.from_dict(json.loads(text), "here")
    assert again == reference
    assert psi(again.score, rows.regression + 3) == psi(reference.score, rows.regression + 3)


@pytest.mark.parametrize(
    ("x", "scores", "names", "message"),
    [
        (np.zeros((3, 2)), np.zeros(3), ["a"], "feature_names: 1 names for 2 columns"),
        (np.zeros((3, 2)), np.zeros(3), ["a", "a"], "feature_names: expected distinct strings"),
        (np.zeros((3, 2)), np.zeros(4), ["a", "b"], r"scores: expected shape \[3\], got \[4\]"),
        (np.zeros((3, 2)), np.zeros((3, 1)), ["a", "b"], r"scores: expected shape \[3\]"),
        (np.zeros((0, 2)), np.zeros(0), ["a", "b"], r"X: expected shape \[n >= 1, F\]"),
        (np.zeros(3), np.zeros(3), ["a"], r"X: expected shape \[n >= 1, F\], got \[3\]"),
    ],
)
def test_fit_refuses_mismatched_input(
    x: np.ndarray, scores: np.ndarray, names: list[str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        Reference.fit(x, scores, names)


_DELETE = object()


def _stored(**change: Any) -> dict[str, Any]:
    x = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, np.nan], [3.0, 4.0]])
    data = Reference.fit(x, [0.1, 0.4, 0.6, 0.9], ["a", "b"]).to_dict()
    for path, value in change.items():
        node = data
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last: Any = int(keys[-1]) if isinstance(node, list) else keys[-1]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "field 'reference' must be an object or null"),
        (_stored(extra=1), "field 'reference.extra' is not known"),
        (_stored(quantile_levels=_DELETE), "field 'reference.quantile_levels' is missing"),
        (_stored(quantile_levels=1), "field 'reference.quantile_levels' is 1, expected 2 to"),
        (_stored(features=[]), "field 'reference.features' must be a non-empty list"),
        (_stored(features__1__name=7), r"field 'reference.features\[1\].name' must be a string"),
        (_stored(features__1__name="a"), "field 'reference.features' repeats a name"),
        (_stored(features__0__count=0), r"'reference.features\[0\].count' is 0, expected"),
        (_stored(features__0__count=True), r"'reference.features\[0\].count' is True"),
        (_stored(features__1__missing_share=1.5), r"features\[1\].missing_share' is 1.5"),
        (_stored(features__0__quantiles=[0.0, 1.0]), r"features\[0\].quantiles' has 2 values"),
        (
            _stored(features__0__quantiles=[1.0] + [0.0] * 100),
            r"'reference.features\[0\].quantiles' is decreasing somewhere",
        ),
        (
            _stored(features__0__quantiles=[math.nan] * 101),
            r"'reference.features\[0\].quantiles' holds a value that is not finite",
        ),
        (_stored(features__0__bin_edges=[2.0, 1.0]), r"features\[0\].bin_edges' must be strictly"),
        (_stored(features__0__bin_shares=[1.0]), r"features\[0\].bin_shares' has 1 values"),
        (_stored(features__0__bin_shares="all"), r"features\[0\].bin_shares' must be a list of"),
        (_stored(score__bin_shares__0=0.9), r"'reference.score.bin_shares' and missing_share add"),
        (_stored(score__bin_shares__0=-0.1), r"'reference.score.bin_shares' has a share outside"),
        (_stored(score__count=_DELETE), r"field 'reference.score.count' is missing"),
        (_stored(score__mean=0.5), r"field 'reference.score.mean' is not known"),
        (_stored(score=None), r"field 'reference.score' must be an object"),
    ],
)
def test_stored_reference_is_refused_naming_the_field(data: object, message: str) -> None:
    with pytest.raises(BundleError, match=message) as raised:
        Reference.from_dict(data, "models/a/1/manifest.json")
    assert str(raised.value).startswith("models/a/1/manifest.json: field 'reference")


def test_the_stored_fixture_itself_is_valid() -> None:
    """The refusals above come from their one change, not from the base they change."""
    assert Reference.from_dict(_stored(), "here").feature_names == ("a", "b")
