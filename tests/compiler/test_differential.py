"""Differential properties: every compiled source scores like its own framework, on batches built
to hit NaN, infinities, signed zeros, huge and tiny values and the model's own split thresholds."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from forestgate.compiler.source import load_source
from forestgate.compiler.verify import make_sample
from tests.sources import NUM_CLASSES, NUM_FEATURES, RECIPES, Case

ATOL = 1e-5
RTOL = 1e-5
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal
F32_SUBNORMAL = float(np.finfo(np.float32).smallest_subnormal)
# As exact float32 values: hypothesis refuses array elements the dtype would round.
SPECIAL = [
    float(np.float32(v))
    for v in (
        np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, F32_MAX, -F32_MAX,
        F32_TINY, -F32_TINY, F32_SUBNORMAL, -F32_SUBNORMAL, 1e-30, -1e-30,
    )
]  # fmt: skip
# LightGBM reads |x| <= 1e-35 as zero while the compiled trees compare it: the documented known
# divergence (compiler/verify.py), pinned by test_lightgbm_zero_threshold_divergence below.
LIGHTGBM_ZERO = float(np.float32(1e-35))

NO_INF_SOURCES = sorted(r.id for r in RECIPES.values() if not r.accepts_inf)


def near_splits(thresholds: npt.NDArray[np.float64]) -> list[float]:
    """float32 values on, just below and just above every finite threshold of one feature."""
    on = thresholds[np.isfinite(thresholds)].astype(np.float32)  # sklearn's NaN splits sit at inf
    below = np.nextafter(on, np.float32(-np.inf))
    above = np.nextafter(on, np.float32(np.inf))
    return sorted({float(v) for v in np.concatenate([on, below, above])})


_batches: dict[str, st.SearchStrategy[npt.NDArray[np.float32]]] = {}


def batches(case: Case) -> st.SearchStrategy[npt.NDArray[np.float32]]:
    """C-contiguous float32 [n, F] batches whose columns mix special values, the model's split
    neighbourhoods and arbitrary float32s."""
    if case.id not in _batches:
        columns = []
        for thresholds in case.thresholds:
            values = st.sampled_from(SPECIAL + near_splits(thresholds)) | st.floats(width=32)
            if case.recipe.framework == "lightgbm":
                values = values.filter(lambda v: abs(v) != LIGHTGBM_ZERO)
            columns.append(values)

        @st.composite
        def draw_batch(draw: st.DrawFn) -> npt.NDArray[np.float32]:
            n = draw(st.integers(min_value=1, max_value=12))
            cols = [draw(arrays(np.float32, n, elements=values)) for values in columns]
            return np.ascontiguousarray(np.stack(cols, axis=1))

        _batches[case.id] = draw_batch()
    return _batches[case.id]


def reference_rows(
    case: Case, x: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """compiler/verify.py's rule for sources that reject NaN or inf: rows with NaN have no
    reference and are left out; +-inf is clamped to +-float32 max for the reference only."""
    keep = np.ones(x.shape[0], dtype=bool)
    if not case.recipe.accepts_nan:
        keep = ~np.isnan(x).any(axis=1)
    reference_input = x[keep]
    if not case.recipe.accepts_inf:
        reference_input = np.clip(reference_input, -F32_MAX, F32_MAX)
    return keep, reference_input


def framework_predict(case: Case, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    # scikit-learn's finiteness check sums the batch: +-float32 max overflows to +-inf there and
    # inf + -inf is NaN, which numpy warns about; the sum is only its fast-path test.
    with np.errstate(over="ignore", invalid="ignore"):
        return case.reference(x)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_compiled_model_scores_like_its_framework(case: Case, data: st.DataObject) -> None:
    x = data.draw(batches(case), label="x")
    got = case.compiled.predict(x)
    n = x.shape[0]
    assert got.shape == ((n, NUM_CLASSES) if case.task == "multiclass" else (n,))
    keep, reference_input = reference_rows(case, x)
    if not keep.any():
        return  # every row has NaN and the source takes none: nothing to compare against
    expected = framework_predict(case, reference_input)
    assert expected.shape == got[keep].shape
    np.testing.assert_allclose(got[keep], expected, atol=ATOL, rtol=RTOL, equal_nan=False)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("recipe_id", NO_INF_SOURCES)
def test_clamping_inf_keeps_every_branch(
    recipe_id: str, compiled_case: Callable[[str], Case], data: st.DataObject
) -> None:
    """The premise of the clamping rule: +-inf and +-float32 max take the same branch at every
    finite threshold, so the clamped reference is the reference for the original row."""
    case = compiled_case(recipe_id)
    x = data.draw(batches(case), label="x")
    clamped = np.ascontiguousarray(np.clip(x, -F32_MAX, F32_MAX))
    np.testing.assert_array_equal(case.compiled.predict(x), case.compiled.predict(clamped))


def test_frameworks_reject_exactly_what_the_rule_assumes(case: Case) -> None:
    """The NaN/inf flags of each source are scikit-learn's real behaviour, not a guess: a source
    said to reject a value raises on it, and one said to accept it scores it."""
    for value, accepted, complaint in (
        (np.nan, case.recipe.accepts_nan, "NaN"),
        (np.inf, case.recipe.accepts_inf, "infinity"),
        (-np.inf, case.recipe.accepts_inf, "infinity"),
    ):
        x = np.zeros((1, NUM_FEATURES), dtype=np.float32)
        x[0, 0] = value
        if accepted:
            assert np.isfinite(framework_predict(case, x)).all()
        else:
            with pytest.raises(ValueError, match=complaint):
                framework_predict(case, x)


def test_manifest_records_what_verification_could_check(case: Case) -> None:
    verification = case.compiled.manifest.verification
    sample = make_sample(load_source(case.trained.model).treelite_model)
    nan_rows = int(np.isnan(sample).any(axis=1).sum())
    assert nan_rows > 0
    assert verification.passed is True
    assert verification.nan_checked is case.recipe.accepts_nan
    # Rows with NaN are verified only where the source can score them.
    assert verification.rows == len(sample) - (0 if case.recipe.accepts_nan else nan_rows)
    if case.recipe.accepts_inf:
        assert verification.inf_checked == "direct"
    else:
        assert verification.inf_checked == "clamped to float32 max for the source"


def test_lightgbm_zero_threshold_divergence(zero_split_case: Case) -> None:
    """The known divergence, pinned so a change on either side is noticed: at LightGBM's -1e-35
    split an input of exactly -1e-35 goes the negative way compiled, the zero way in LightGBM,
    whatever the rest of the row holds. One float32 step away, both agree again."""
    probes = [
        -LIGHTGBM_ZERO,
        -2e-35,
        0.0,
        LIGHTGBM_ZERO,
        float(np.nextafter(np.float32(-1e-35), 0)),
    ]
    x = np.full((2 * len(probes), NUM_FEATURES), 0.5, dtype=np.float32)
    x[len(probes) :] = np.nan  # the same probes with every other feature missing
    x[:, 2] = probes * 2
    compiled = zero_split_case.compiled.predict(x).reshape(2, len(probes))
    lightgbm = zero_split_case.reference(x).reshape(2, len(probes))
    at, negative, zero, positive, just_above = range(len(probes))
    for row in range(2):
        assert compiled[row, at] == compiled[row, negative]
        assert lightgbm[row, at] == lightgbm[row, zero]
        assert abs(compiled[row, at] - lightgbm[row, at]) > 0.01
        for agreed in (negative, zero, positive, just_above):
            assert compiled[row, agreed] == pytest.approx(lightgbm[row, agreed], abs=ATOL)
