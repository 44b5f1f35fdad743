"""Reference: the training distributions of a model's features and scores, kept for drift checks.

Each column (every feature, and the score) is summarised by a `Distribution`: its row count, the
share of missing values (NaN), 101 quantiles (0%, 1%, ..., 100%) of its finite values, and the
bins drift is measured on: the distinct training deciles as edges, bin i holding
edges[i-1] < v <= edges[i] (the first and last bins are open, so +-inf fall in them), with the
share of training rows in each bin. Missing values are a bin of their own, so a change in how
often a feature is missing counts as drift too. `psi` compares new values with those bins.

Stored as JSON in the manifest (no NaN anywhere: a column with no finite value has null
quantiles). numpy only: the server reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from forestgate.errors import BundleError, InvalidInput

QUANTILE_LEVELS = 101
MAX_QUANTILE_LEVELS = 1001
# Empty bins would make PSI infinite: a share of exactly 0 counts as PSI_EPSILON, on either
# side (the convention of Evidently's PSI; it caps one empty bin's term near 0.1 * ln(1000)).
PSI_EPSILON = 1e-4
_SHARE_SUM_TOLERANCE = 1e-6
_DIST_KEYS = ("count", "missing_share", "quantiles", "bin_edges", "bin_shares")


@dataclass(frozen=True)
class Distribution:
    """One column's training distribution (see the module docstring)."""

    count: int
    missing_share: float
    quantiles: tuple[float, ...] | None
    bin_edges: tuple[float, ...]
    bin_shares: tuple[float, ...]

    @classmethod
    def fit(cls, values: npt.ArrayLike, levels: int = QUANTILE_LEVELS) -> Distribution:
        column = np.asarray(values, dtype=np.float64)
        if column.ndim != 1 or column.size == 0:
            raise InvalidInput(f"expected a non-empty 1-D column, got shape {list(column.shape)}")
        finite = column[np.isfinite(column)]
        if finite.size:
            quantiles = np.quantile(finite, np.linspace(0.0, 1.0, levels))
            deciles = np.quantile(finite, np.linspace(0.1, 0.9, 9))
            edges = np.unique(deciles)
        else:
            quantiles, edges = None, np.empty(0)
        shares, missing = _bin_shares(edges, column)
        return cls(
            count=int(column.size),
            missing_share=missing,
            quantiles=None if quantiles is None else tuple(quantiles.tolist()),
            bin_edges=tuple(edges.tolist()),
            bin_shares=tuple(shares.tolist()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "missing_share": self.missing_share,
            "quantiles": None if self.quantiles is None else list(self.quantiles),
            "bin_edges": list(self.bin_edges),
            "bin_shares": list(self.bin_shares),
        }

    @classmethod
    def from_dict(cls, data: object, field: str, where: str, *, levels: int) -> Distribution:
        def fail(key: str, message: str) -> BundleError:
            return BundleError(f"{where}: field '{field}{key}' {message}")

        if not isinstance(data, dict):
            raise fail("", "must be an object")
        unknown = sorted(set(data) - set(_DIST_KEYS))
        if unknown:
            raise fail(f".{unknown[0]}", "is not known")
        for key in _DIST_KEYS:
            if key not in data:
                raise fail(f".{key}", "is missing")
        count, missing = _counts(data, fail)
        quantiles = None
        if data["quantiles"] is not None:
            quantiles = _numbers(data["quantiles"], f"{field}.quantiles", where)
            if quantiles.size != levels:
                raise fail(".quantiles", f"has {quantiles.size} values, expected {levels}")
            if np.any(np.diff(quantiles) < 0):
                raise fail(".quantiles", "is decreasing somewhere")
        edges, shares = _bins(data, missing, levels=levels, field=field, where=where, fail=fail)
        return cls(
            count=count,
            missing_share=float(missing),
            quantiles=None if quantiles is None else tuple(quantiles.tolist()),
            bin_edges=tuple(edges.tolist()),
            bin_shares=tuple(shares.tolist()),
        )


@dataclass(frozen=True)
class Reference:
    """The training distributions of every feature (in the model's order) and of the score."""

    feature_names: tuple[str, ...]
    features: tuple[Distribution, ...]
    score: Distribution
    quantile_levels: int = QUANTILE_LEVELS

    @classmethod
    def fit(
        cls, X: npt.ArrayLike, scores: npt.ArrayLike, feature_names: Sequence[str]
    ) -> Reference:
        """X: float [n, F] (NaN = missing) as the model sees it; scores: float [n], the model's
        outputs on X; feature_names: the F names, in the model's order."""
        x = np.asarray(X, dtype=np.float64)
        s = np.asarray(scores, dtype=np.float64)
        names = tuple(feature_names)
        if x.ndim != 2 or x.shape[0] == 0:
            raise InvalidInput(f"X: expected shape [n >= 1, F], got {list(x.shape)}")
        if x.shape[1] != len(names):
            raise InvalidInput(f"feature_names: {len(names)} names for {x.shape[1]} columns of X")
        if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise InvalidInput("feature_names: expected distinct strings")
        if s.shape != (x.shape[0],):
            raise InvalidInput(f"scores: expected shape [{x.shape[0]}], got {list(s.shape)}")
        features = tuple(Distribution.fit(x[:, j]) for j in range(x.shape[1]))
        return cls(names, features, Distribution.fit(s))

    @property
    def num_features(self) -> int:
        return len(self.features)

    def feature(self, name: str) -> Distribution:
        try:
            return self.features[self.feature_names.index(name)]
        except ValueError:
            raise KeyError(f"reference has no feature {name!r}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantile_levels": self.quantile_levels,
            "features": [
                {"name": name, **dist.to_dict()}
                for name, dist in zip(self.feature_names, self.features, strict=True)
            ],
            "score": self.score.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object, where: str) -> Reference:
        """Validate stored distributions; a problem is a BundleError naming `where` and the
        field."""
        if not isinstance(data, dict):
            raise BundleError(f"{where}: field 'reference' must be an object or null")
        unknown = sorted(set(data) - {"quantile_levels", "features", "score"})
        if unknown:
            raise BundleError(f"{where}: field 'reference.{unknown[0]}' is not known")
        levels = data.get("quantile_levels")
        if isinstance(levels, bool) or not isinstance(levels, int):
            raise BundleError(f"{where}: field 'reference.quantile_levels' is missing")
        if not 2 <= levels <= MAX_QUANTILE_LEVELS:
            raise BundleError(
                f"{where}: field 'reference.quantile_levels' is {levels}, expected 2 to "
                f"{MAX_QUANTILE_LEVELS}"
            )
        raw_features = data.get("features")
        if not isinstance(raw_features, list) or not raw_features:
            raise BundleError(f"{where}: field 'reference.features' must be a non-empty list")
        names, features = [], []
        for i, raw in enumerate(raw_features):
            field = f"reference.features[{i}]"
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise BundleError(f"{where}: field '{field}.name' must be a string")
            rest = {k: v for k, v in raw.items() if k != "name"}
            features.append(Distribution.from_dict(rest, field, where, levels=levels))
            names.append(raw["name"])
        if len(set(names)) != len(names):
            raise BundleError(f"{where}: field 'reference.features' repeats a name")
        score = Distribution.from_dict(data.get("score"), "reference.score", where, levels=levels)
        return cls(tuple(names), tuple(features), score, levels)


Fail = Callable[[str, str], BundleError]


def _counts(data: dict[str, Any], fail: Fail) -> tuple[int, float]:
    count = data["count"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise fail(".count", f"is {count!r}, expected a whole number >= 1")
    missing = data["missing_share"]
    if isinstance(missing, bool) or not isinstance(missing, int | float) or not 0 <= missing <= 1:
        raise fail(".missing_share", f"is {missing!r}, expected a share in [0, 1]")
    return count, float(missing)


def _bins(
    data: dict[str, Any], missing: float, *, levels: int, field: str, where: str, fail: Fail
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    edges = _numbers(data["bin_edges"], f"{field}.bin_edges", where)
    if edges.size > levels or np.any(np.diff(edges) <= 0):
        raise fail(".bin_edges", f"must be strictly increasing, at most {levels} values")
    shares = _numbers(data["bin_shares"], f"{field}.bin_shares", where)
    if shares.size != edges.size + 1:
        raise fail(".bin_shares", f"has {shares.size} values, expected {edges.size + 1}")
    if np.any((shares < 0) | (shares > 1)):
        raise fail(".bin_shares", "has a share outside [0, 1]")
    total = float(shares.sum()) + missing
    if abs(total - 1.0) > _SHARE_SUM_TOLERANCE:
        raise fail(".bin_shares", f"and missing_share add up to {total!r}, expected 1")
    return edges, shares


def psi(expected: Distribution, actual: npt.ArrayLike) -> float:
    """Population Stability Index of `actual` values against a reference distribution:
    sum over bins (missing included) of (a - e) * ln(a / e), a and e the actual and expected
    shares, an empty bin counting as PSI_EPSILON. Common reading: < 0.1 stable, 0.1 to 0.25
    some shift, > 0.25 a real shift."""
    values = np.asarray(actual, dtype=np.float64).ravel()
    if values.size == 0:
        raise InvalidInput("actual: no values to compare with the reference")
    a_bins, a_missing = _bin_shares(np.asarray(expected.bin_edges, dtype=np.float64), values)
    a = np.append(a_bins, a_missing)
    e = np.append(np.asarray(expected.bin_shares, dtype=np.float64), expected.missing_share)
    a = np.where(a == 0.0, PSI_EPSILON, a)
    e = np.where(e == 0.0, PSI_EPSILON, e)
    return float(np.sum((a - e) * np.log(a / e)))


def _bin_shares(
    edges: npt.NDArray[np.float64], column: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], float]:
    """Share of all rows in each bin edges[i-1] < v <= edges[i], and the share that is NaN."""
    missing = np.isnan(column)
    present = column[~missing]
    bins = np.searchsorted(edges, present, side="left")
    counts = np.bincount(bins, minlength=edges.size + 1)
    return counts / column.size, float(missing.sum()) / column.size


def _numbers(value: object, field: str, where: str) -> npt.NDArray[np.float64]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise BundleError(f"{where}: field '{field}' must be a list of numbers")
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise BundleError(f"{where}: field '{field}' holds a value that is not finite")
    return array
