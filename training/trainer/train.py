"""Model fitting: a time split, inverse-propensity weights, XGBoost and LightGBM fitted side by
side on the same rows, and the one with the lower weighted validation log loss kept.

Weights are 1/propensity of the logged action (route or retry delay), clipped and rescaled to
mean 1 in each split, so that the model learns route (or delay) effects rather than the logging
policy's preferences: the incumbent sends most traffic to its favourite route, and unweighted
training would mostly learn about that route.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from forestgate.errors import InvalidInput
from forestgate.training.trainer.evaluate import Quality, quality

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

FRAMEWORKS = ("xgboost", "lightgbm")
MIN_DAYS = 5
SPLITS = ("train", "valid", "test")
# An explored route has propensity ~0.07/5, so its raw weight is ~70. Measured on the default
# preset (1M attempts, demo config; bench/results/weight_cap.md, the mean of the two
# frameworks), the cap trades bias against variance: within-payment
# correlation of predicted and true route differences 0.30 unweighted, 0.38 at cap 10, 0.33 at
# cap 50, and routing net value per 1,000 payments 19,610 / 19,655 / 19,641 USD (logging
# policy 19,525, oracle 19,847).
MAX_WEIGHT = 10.0


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Boosting settings shared by both frameworks (LightGBM's num_leaves = 2**max_depth - 1)."""

    trees: int
    max_depth: int
    learning_rate: float
    early_stopping_rounds: int = 30
    min_child_weight: float = 5.0


# "demo" keeps `make run` on a fresh machine to about a minute; "full" is the documented build.
CONFIGS: dict[str, ModelConfig] = {
    "demo": ModelConfig(trees=80, max_depth=5, learning_rate=0.15),
    "full": ModelConfig(trees=400, max_depth=7, learning_rate=0.05, early_stopping_rounds=50),
}


@dataclass(frozen=True, slots=True)
class TimeSplit:
    """Days [0, valid_from) train, [valid_from, test_from) validate, [test_from, end) test."""

    valid_from: int
    test_from: int
    days: int

    @classmethod
    def of(cls, days: int, valid_share: float = 0.2, test_share: float = 0.2) -> TimeSplit:
        if days < MIN_DAYS:
            raise InvalidInput(
                f"the attempts span {days} day(s); a time split into train, validation and test "
                f"needs at least {MIN_DAYS}"
            )
        test_from = days - max(1, round(days * test_share))
        valid_from = test_from - max(1, round(days * valid_share))
        return cls(valid_from=valid_from, test_from=test_from, days=days)

    def label(self, split: str) -> str:
        start, end = {
            "train": (0, self.valid_from),
            "valid": (self.valid_from, self.test_from),
            "test": (self.test_from, self.days),
        }[split]
        return f"{split} (days {start}-{end - 1})"

    def masks(self, day: npt.NDArray[np.int64]) -> dict[str, B]:
        return {
            "train": day < self.valid_from,
            "valid": (day >= self.valid_from) & (day < self.test_from),
            "test": day >= self.test_from,
        }


@dataclass(frozen=True, slots=True)
class Dataset:
    """One model's rows as arrays, split by time."""

    name: str
    features: tuple[str, ...]
    x: F32
    y: B
    weight: F64
    day: npt.NDArray[np.int64]
    split: TimeSplit

    def part(self, split: str) -> tuple[F32, B, F64]:
        mask = self.split.masks(self.day)[split]
        w = self.weight[mask]
        return self.x[mask], self.y[mask], w / max(float(w.mean()), 1e-12)


def matrix(table: pa.Table, features: tuple[str, ...]) -> F32:
    """The feature columns of ``table`` as the float32 [n, F] rows a model (and its bundle)
    scores, in ``features`` order."""
    return np.column_stack(
        [table.column(c).to_numpy(zero_copy_only=False).astype(np.float32) for c in features]
    )


def dataset(
    name: str, table: pa.Table, features: tuple[str, ...], split: TimeSplit, *, label: str
) -> Dataset:
    """Arrays from a feature table; every split must be non-empty and hold both outcomes."""
    missing = [c for c in (*features, label, "propensity", "day") if c not in table.column_names]
    if missing:
        raise InvalidInput(f"{name} features: missing column(s) {', '.join(missing)}")
    x = matrix(table, features)
    y = table.column(label).to_numpy(zero_copy_only=False).astype(np.bool_)
    prop = table.column("propensity").to_numpy(zero_copy_only=False).astype(np.float64)
    prop = np.where(np.isfinite(prop) & (prop > 0), prop, 1.0)
    weight = np.minimum(1.0 / prop, MAX_WEIGHT)
    day = table.column("day").to_numpy(zero_copy_only=False).astype(np.int64)
    for part, mask in split.masks(day).items():
        if not mask.any():
            raise InvalidInput(f"{name}: split {split.label(part)} has no rows")
        classes = np.unique(y[mask])
        if classes.size < 2:
            raise InvalidInput(
                f"{name}: label {label!r} has one class ({bool(classes[0])}) in split "
                f"{split.label(part)}; a classifier needs both outcomes"
            )
    return Dataset(name, features, x, y, weight, day, split)


@dataclass(frozen=True, slots=True)
class Fitted:
    framework: str
    model: Any  # xgboost.XGBClassifier or lightgbm.Booster
    trees: int  # after early stopping
    seconds: float
    valid: Quality  # weighted, raw probabilities

    def predict(self, x: F32) -> F64:
        """Probabilities from the trees early stopping kept: exactly what gets compiled."""
        return _predict(self.framework, self.model, self.trees, x)


def _predict(framework: str, model: Any, trees: int, x: F32) -> F64:
    if framework == "xgboost":
        return np.asarray(model.predict_proba(x, iteration_range=(0, trees))[:, 1], np.float64)
    return np.asarray(model.predict(x, num_iteration=trees), dtype=np.float64)


def fit(framework: str, data: Dataset, config: ModelConfig, *, seed: int) -> Fitted:
    """One framework fitted on train with early stopping on validation log loss."""
    xt, yt, wt = data.part("train")
    xv, yv, wv = data.part("valid")
    names = list(data.features)
    started = time.perf_counter()
    if framework == "xgboost":
        import xgboost as xgb

        model: Any = xgb.XGBClassifier(
            n_estimators=config.trees,
            max_depth=config.max_depth,
            learning_rate=config.learning_rate,
            min_child_weight=config.min_child_weight,
            tree_method="hist",
            early_stopping_rounds=config.early_stopping_rounds,
            eval_metric="logloss",
            n_jobs=2,
            random_state=seed,
        )
        model.fit(xt, yt, sample_weight=wt, eval_set=[(xv, yv)], sample_weight_eval_set=[wv],
                  verbose=False)  # fmt: skip
        model.get_booster().feature_names = names
        trees = int(model.best_iteration) + 1
    elif framework == "lightgbm":
        import lightgbm as lgb

        # The native API: the sklearn wrapper's eval-set arguments changed within lightgbm 4.x.
        params = {
            "objective": "binary",
            "learning_rate": config.learning_rate,
            "max_depth": config.max_depth,
            "num_leaves": 2**config.max_depth - 1,
            "min_sum_hessian_in_leaf": config.min_child_weight,
            "num_threads": 2,
            "seed": seed,
            "deterministic": True,
            "verbosity": -1,
        }
        train_set = lgb.Dataset(xt, label=yt, weight=wt, feature_name=names)
        valid_set = lgb.Dataset(xv, label=yv, weight=wv, reference=train_set)
        model = lgb.train(
            params, train_set, num_boost_round=config.trees, valid_sets=[valid_set],
            callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
        )  # fmt: skip
        trees = int(model.best_iteration or config.trees)
    else:
        raise InvalidInput(f"framework: expected one of {FRAMEWORKS}, got {framework!r}")
    seconds = time.perf_counter() - started
    valid = quality(yv, _predict(framework, model, trees, xv), wv)
    return Fitted(framework, model, trees, seconds, valid)


def trim(fitted: Fitted) -> Any:
    """The model as the compiler should see it: only the trees early stopping kept."""
    if fitted.framework == "xgboost":
        return fitted.model.get_booster()[: fitted.trees]
    import lightgbm as lgb

    return lgb.Booster(model_str=fitted.model.model_to_string(num_iteration=fitted.trees))


@dataclass(frozen=True, slots=True)
class Selection:
    kept: Fitted
    candidates: tuple[Fitted, ...]
    reason: str


def select(data: Dataset, config: ModelConfig, *, seed: int) -> Selection:
    """Fit every framework and keep the lower weighted validation log loss."""
    candidates = tuple(fit(f, data, config, seed=seed) for f in FRAMEWORKS)
    kept = min(candidates, key=lambda c: c.valid.log_loss)
    other = next(c for c in candidates if c is not kept)
    reason = (
        f"{kept.framework} kept: weighted validation log loss {kept.valid.log_loss:.4f} against "
        f"{other.framework}'s {other.valid.log_loss:.4f} (ROC-AUC {kept.valid.roc_auc:.4f} vs "
        f"{other.valid.roc_auc:.4f}; {kept.trees} vs {other.trees} trees after early stopping)"
    )
    return Selection(kept, candidates, reason)
