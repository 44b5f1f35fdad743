"""Calibration: the map from a binary model's output probability to a calibrated probability.

Two methods, both fitted in training and stored in the bundle manifest:

- `isotonic`: increasing breakpoints x[], y[], applied by linear interpolation and clipped to
  y[0], y[-1] outside [x[0], x[-1]], as scikit-learn's `IsotonicRegression(out_of_bounds="clip")`
  predicts;
- `platt`: p' = sigmoid(a * logit(p) + b), with `logit` below clipping p to [1e-15, 1 - 1e-15]
  so p = 0 and p = 1 stay finite. Training must build the logistic regression's single column
  with the same `logit`.

The server imports this module: numpy and the standard library only. Training builds maps from
fitted scikit-learn estimators with `forestgate.compiler.calibration.from_sklearn`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from forestgate.errors import BundleError, InvalidInput

METHODS = ("isotonic", "platt")
MAX_BREAKPOINTS = 10_000
# Part of the stored format: a Platt map fitted on logit(p) clipped elsewhere would differ at
# the extremes. 1 - 1e-15 is still distinct from 1.0 in float64.
LOGIT_EPS = 1e-15
_FIELDS = {"isotonic": ("x", "y"), "platt": ("a", "b")}


def logit(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """log(p / (1 - p)) with p clipped to [LOGIT_EPS, 1 - LOGIT_EPS]; NaN stays NaN."""
    q = np.clip(np.asarray(p, dtype=np.float64), LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(q) - np.log1p(-q)


class Calibration:
    """An immutable, validated calibration map; build it with `isotonic`, `platt` or
    `from_dict` (training: `forestgate.compiler.calibration.from_sklearn`). Construction errors
    are InvalidInput naming the field."""

    __slots__ = ("_x", "_y", "a", "b", "method")

    def __init__(
        self,
        method: str,
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        a: float,
        b: float,
    ) -> None:
        self.method = method
        self._x = x
        self._y = y
        self.a = a
        self.b = b

    @classmethod
    def isotonic(cls, x: npt.ArrayLike, y: npt.ArrayLike) -> Calibration:
        xs = _finite_vector(x, "calibration.x")
        ys = _finite_vector(y, "calibration.y")
        if xs.size != ys.size:
            raise InvalidInput(
                f"field 'calibration.x' has {xs.size} breakpoints but 'calibration.y' has "
                f"{ys.size}; they must have the same length"
            )
        if xs.size > MAX_BREAKPOINTS:
            raise InvalidInput(
                f"field 'calibration.x' has {xs.size} breakpoints, more than the limit of "
                f"{MAX_BREAKPOINTS}"
            )
        steps = np.diff(xs)
        if np.any(steps <= 0):
            i = int(np.argmax(steps <= 0)) + 1
            raise InvalidInput(
                f"field 'calibration.x' is not strictly increasing "
                f"(x[{i}] = {float(xs[i])!r} after x[{i - 1}] = {float(xs[i - 1])!r})"
            )
        outside = (ys < 0.0) | (ys > 1.0)
        if np.any(outside):
            i = int(np.argmax(outside))
            raise InvalidInput(
                f"field 'calibration.y' is outside [0, 1] (y[{i}] = {float(ys[i])!r})"
            )
        falls = np.diff(ys) < 0
        if np.any(falls):
            i = int(np.argmax(falls)) + 1
            raise InvalidInput(
                f"field 'calibration.y' is decreasing (y[{i}] = {float(ys[i])!r} after "
                f"y[{i - 1}] = {float(ys[i - 1])!r}); a calibration map must not decrease"
            )
        xs.flags.writeable = False
        ys.flags.writeable = False
        return cls("isotonic", xs, ys, math.nan, math.nan)

    @classmethod
    def platt(cls, a: float, b: float) -> Calibration:
        values = {}
        for key, value in (("a", a), ("b", b)):
            if isinstance(value, bool) or not isinstance(
                value, int | float | np.integer | np.floating
            ):
                raise InvalidInput(
                    f"field 'calibration.{key}' must be a number, got {type(value).__name__}"
                )
            if not math.isfinite(value):
                raise InvalidInput(
                    f"field 'calibration.{key}' is {float(value)!r}, expected finite"
                )
            values[key] = float(value)
        empty = np.empty(0, dtype=np.float64)
        return cls("platt", empty, empty, values["a"], values["b"])

    @property
    def breakpoints(self) -> int:
        """How many breakpoints an isotonic map has (0 for Platt)."""
        return int(self._x.size)

    @property
    def x(self) -> npt.NDArray[np.float64]:
        return self._x

    @property
    def y(self) -> npt.NDArray[np.float64]:
        return self._y

    def apply(self, p: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Calibrated probabilities in [0, 1], float64, of p's shape; NaN stays NaN."""
        values = np.asarray(p, dtype=np.float64)
        if self.method == "isotonic":
            # np.interp holds the end values outside [x[0], x[-1]]: the same as clipping the
            # input first, which is what scikit-learn does.
            return np.interp(values, self._x, self._y)
        # exp of a non-positive argument only: it cannot overflow (a warning, an error under
        # pytest), and far tails underflow to exactly 0 and 1.
        t = self.a * logit(values) + self.b
        e = np.exp(-np.abs(t))
        return np.where(t >= 0, 1.0, e) / (1.0 + e)

    def to_dict(self) -> dict[str, Any]:
        if self.method == "isotonic":
            return {"method": "isotonic", "x": self._x.tolist(), "y": self._y.tolist()}
        return {"method": "platt", "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: object, where: str) -> Calibration:
        """Validate a stored map; a problem is a BundleError naming `where` and the field."""
        if not isinstance(data, dict):
            raise BundleError(f"{where}: field 'calibration' must be an object or null")
        method = data.get("method")
        if method not in METHODS:
            raise BundleError(
                f"{where}: field 'calibration.method' is {method!r}, expected one of {METHODS}"
            )
        unknown = sorted(set(data) - {"method", *_FIELDS[method]})
        if unknown:
            raise BundleError(
                f"{where}: field 'calibration.{unknown[0]}' is not known for method {method!r}"
            )
        for key in _FIELDS[method]:
            if key not in data:
                raise BundleError(f"{where}: field 'calibration.{key}' is missing")
        try:
            if method == "isotonic":
                return cls.isotonic(data["x"], data["y"])
            return cls.platt(data["a"], data["b"])
        except InvalidInput as exc:
            raise BundleError(f"{where}: {exc}") from None

    def describe(self) -> str:
        if self.method == "isotonic":
            return f"isotonic, {self.breakpoints} breakpoints"
        return f"platt, a={self.a:.6g}, b={self.b:.6g}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Calibration):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        return f"Calibration({self.describe()})"


def _finite_vector(value: object, field: str) -> npt.NDArray[np.float64]:
    """A non-empty 1-D list or array of finite numbers, copied to float64."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiu":
            raise InvalidInput(f"field {field!r} must hold numbers, got dtype {value.dtype}")
        items = value
    elif isinstance(value, list | tuple) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        items = np.asarray(value, dtype=np.float64)
    else:
        raise InvalidInput(f"field {field!r} must be a list of numbers")
    if items.ndim != 1 or items.size == 0:
        raise InvalidInput(f"field {field!r} must be a non-empty list, got shape {items.shape}")
    array = np.array(items, dtype=np.float64)
    bad = ~np.isfinite(array)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise InvalidInput(f"field {field!r} is not finite ({field}[{i}] = {float(array[i])!r})")
    return array
