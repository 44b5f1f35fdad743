"""Verification: the compiled library must reproduce the source framework's predictions.

The sample is built from the model's own split thresholds, so rows land on both sides of (and
exactly on) the splits that matter, and it always includes NaN (missing), +-inf, zeros and values
far outside the training range. A source framework that rejects NaN or inf (scikit-learn's
classic trees) cannot give a reference for such rows: its NaN rows are left out, and its +-inf
rows are compared against the same rows with +-inf clamped to the largest finite float32, which
takes the same branch against every finite threshold. The manifest records which was done.

One known divergence is left out of the sample on purpose: LightGBM splits at its zero
threshold (+-1e-35) separate zero from non-zero, and LightGBM reads every input with
|x| <= 1e-35 as zero while the compiled trees compare it, so an input of exactly -1e-35 (as
float32) at a -1e-35 split takes the negative branch compiled and the zero branch in LightGBM,
whatever the rest of the row holds (tests/compiler/test_differential.py pins this). Such
thresholds are sampled as 0.0 instead, which is the value they exist for; no real feature takes
values of 1e-35.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import treelite

from forestgate.compiler.source import SourceModel
from forestgate.engine.abi import ALL_OUTPUTS, load_library
from forestgate.engine.manifest import SelfCheck, VerificationRecord, VerificationResult
from forestgate.errors import VerificationError

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-5
DEFAULT_ROWS = 2_000
_FAR = np.float32(1e30)
_F32_MAX = np.finfo(np.float32).max


@dataclass(frozen=True)
class Verification(VerificationResult):
    """The result as the manifest records it, plus the worst rows for the error report."""

    worst: list[dict[str, Any]]

    def record(self, self_check: SelfCheck) -> VerificationRecord:
        """The manifest's verification section: this result plus the self-check rows."""
        result = {f.name: getattr(self, f.name) for f in dataclasses.fields(VerificationResult)}
        return VerificationRecord(**result, self_check=self_check)

    def report(self) -> str:
        lines = [
            f"verification {'passed' if self.passed else 'FAILED'}: {self.rows} rows, "
            f"max |diff| {self.max_abs_diff:.3g}, {self.rows_over_tolerance} rows over "
            f"atol={self.atol:g} + rtol={self.rtol:g} * |source|"
        ]
        for w in self.worst:
            lines.append(
                f"  row {w['row']}: compiled {w['compiled']:.9g} source {w['source']:.9g} "
                f"|diff| {w['abs_diff']:.3g} (non-finite inputs: {w['non_finite_inputs']})"
            )
        return "\n".join(lines)


def split_thresholds(model: treelite.Model) -> list[npt.NDArray[np.float64]]:
    """Every numerical split threshold, per feature."""
    per_feature: list[list[npt.NDArray[np.float64]]] = [[] for _ in range(model.num_feature)]
    for t in range(model.num_tree):
        tree = model.get_tree_accessor(t)
        split = tree.get_field("split_index")
        threshold = tree.get_field("threshold")
        internal = tree.get_field("cleft") >= 0
        for feature in np.unique(split[internal]):
            per_feature[int(feature)].append(threshold[internal & (split == feature)])
    return [np.unique(np.concatenate(chunks)) if chunks else np.zeros(0) for chunks in per_feature]


def make_sample(
    model: treelite.Model,
    *,
    rows: int = DEFAULT_ROWS,
    seed: int = 0,
    extra_rows: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """Rows that exercise the model's splits, missing values and extremes."""
    rng = np.random.default_rng(seed)
    thresholds = split_thresholds(model)
    n_features = model.num_feature
    x = np.empty((rows, n_features), dtype=np.float32)
    for j, all_th in enumerate(thresholds):
        # sklearn splits NaN from numbers at threshold inf; LightGBM zero splits sit at +-1e-35.
        th = all_th[np.isfinite(all_th)]
        th = np.where(np.abs(th) < 1e-30, 0.0, th)
        if th.size == 0:
            th = np.zeros(1)
        lo, hi = float(th.min()), float(th.max())
        span = max(hi - lo, 1.0)
        picks = th[rng.integers(0, th.size, rows)].astype(np.float32)
        nudged = np.nextafter(picks, np.where(rng.random(rows) < 0.5, -np.inf, np.inf)).astype(
            np.float32
        )
        uniform = rng.uniform(lo - span, hi + span, rows).astype(np.float32)
        kind = rng.random(rows)
        col = np.where(kind < 0.35, nudged, uniform)
        col = np.where((kind >= 0.35) & (kind < 0.5), picks, col)  # exactly on a threshold
        col[(kind >= 0.80) & (kind < 0.88)] = np.nan
        col[(kind >= 0.88) & (kind < 0.91)] = np.inf
        col[(kind >= 0.91) & (kind < 0.94)] = -np.inf
        col[(kind >= 0.94) & (kind < 0.97)] = 0.0
        far = (kind >= 0.97) & (kind < 0.985)
        col[far] = _FAR
        col[kind >= 0.985] = -_FAR
        x[:, j] = col
    special = np.stack(
        [np.full(n_features, v, dtype=np.float32) for v in (np.nan, 0.0, np.inf, -np.inf, _FAR)]
    )
    parts = [special, x]
    if extra_rows is not None:
        parts.append(np.ascontiguousarray(extra_rows, dtype=np.float32))
    return np.ascontiguousarray(np.concatenate(parts))


def library_outputs(library_path: Path) -> int:
    """How many raw outputs per row the library writes (N_TARGET * MAX_N_CLASS)."""
    return load_library(library_path).num_output


def call_library(
    library_path: Path, x: npt.NDArray[np.float32], output_column: int | None
) -> npt.NDArray[np.float32]:
    """Score rows through a freshly built library, before any manifest exists: [n, width]."""
    library = load_library(library_path)
    width = 1 if output_column is not None else library.num_output
    out = np.empty((x.shape[0], width), dtype=np.float32)
    col = ALL_OUTPUTS if output_column is None else output_column
    if library.predict(x.ctypes.data, x.shape[0], col, out.ctypes.data) != 0:
        raise MemoryError("native predict could not allocate")
    return out


def verify_library(
    library_path: Path,
    source: SourceModel,
    sample: npt.NDArray[np.float32],
    *,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> Verification:
    """Compare compiled and source predictions row by row; raises VerificationError on failure."""
    x = sample
    if not source.accepts_nan:
        x = np.ascontiguousarray(x[~np.isnan(x).any(axis=1)])
    reference_input = x
    inf_checked = "direct"
    if not source.accepts_inf:
        reference_input = np.clip(x, -_F32_MAX, _F32_MAX)
        inf_checked = "clamped to float32 max for the source"
    compiled = call_library(library_path, x, source.output_column).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # sklearn's finiteness check overflows
        expected = source.predict(reference_input).reshape(x.shape[0], -1)
    if expected.shape != compiled.shape:
        raise VerificationError(
            f"compiled output has shape {list(compiled.shape)}, source {list(expected.shape)}",
            report="",
        )
    abs_diff = np.abs(compiled - expected)
    rel_diff = abs_diff / np.maximum(np.abs(expected), 1e-12)
    row_excess = (abs_diff - (atol + rtol * np.abs(expected))).max(axis=1)
    over = int(np.count_nonzero(row_excess > 0) + np.count_nonzero(np.isnan(row_excess)))
    order = np.argsort(-np.nan_to_num(row_excess, nan=np.inf))[:5]
    worst = [
        {
            "row": int(i),
            "compiled": float(compiled[i].flat[int(np.argmax(abs_diff[i]))]),
            "source": float(expected[i].flat[int(np.argmax(abs_diff[i]))]),
            "abs_diff": float(abs_diff[i].max()),
            "non_finite_inputs": int(np.count_nonzero(~np.isfinite(x[i]))),
        }
        for i in order
    ]
    result = Verification(
        passed=over == 0,
        rows=int(x.shape[0]),
        atol=atol,
        rtol=rtol,
        max_abs_diff=float(np.nanmax(abs_diff)) if abs_diff.size else 0.0,
        max_rel_diff=float(np.nanmax(rel_diff)) if rel_diff.size else 0.0,
        rows_over_tolerance=over,
        nan_checked=source.accepts_nan,
        inf_checked=inf_checked,
        worst=worst,
    )
    if not result.passed:
        raise VerificationError(
            f"compiled predictions differ from {source.framework} on {over} of {x.shape[0]} rows",
            report=result.report(),
        )
    return result
