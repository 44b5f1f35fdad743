"""Engine data: the synthetic card-payment data set and the benchmark models trained on it, cached.

Data and trained models are cached under bench/.cache/ by a key made of their parameters, so
bench/engine.py, bench/shim_blocks.py and bench/server.py train each model once.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DATA_VERSION = 1
NUM_FEATURES = 64
# Cardinalities of the integer-coded categoricals, as in engines.md section 4.
CATEGORY_SIZES = (20, 50, 4, 6, 8, 24)
NAN_RATES = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40)


@dataclass(frozen=True)
class ModelSpec:
    """One benchmark model: framework, shape and training parameters."""

    name: str
    framework: str  # "xgboost" | "lightgbm"
    trees: int
    depth: int  # max depth; 0 = unlimited (LightGBM leaf-wise)
    leaves: int = 0  # LightGBM num_leaves
    learning_rate: float = 0.1
    # "medium" is what the issue calls realistic. "tiny" and "large" models only join the
    # compile-option sweep, to see whether the best options change with model size.
    size: str = "medium"

    @property
    def sweep_only(self) -> bool:
        return self.size in ("tiny", "large")

    @property
    def shape(self) -> str:
        if self.framework == "xgboost":
            return f"{self.trees} trees, depth {self.depth}"
        depth = f", max depth {self.depth}" if self.depth else ""
        return f"{self.trees} trees, {self.leaves} leaves{depth}"


SPECS = {
    spec.name: spec
    for spec in (
        ModelSpec("xgb_med", "xgboost", trees=300, depth=8, learning_rate=0.1),
        ModelSpec("lgb_med", "lightgbm", trees=300, depth=0, leaves=63, learning_rate=0.05),
        ModelSpec("xgb_small", "xgboost", trees=100, depth=6, learning_rate=0.05, size="small"),
        ModelSpec(
            "lgb_small",
            "lightgbm",
            trees=100,
            depth=6,
            leaves=63,
            learning_rate=0.05,
            size="small",
        ),
        ModelSpec(
            "lgb_big", "lightgbm", trees=1000, depth=0, leaves=63, learning_rate=0.05, size="large"
        ),
        ModelSpec("xgb_tiny", "xgboost", trees=20, depth=4, learning_rate=0.2, size="tiny"),
        ModelSpec(
            "lgb_tiny", "lightgbm", trees=20, depth=4, leaves=15, learning_rate=0.2, size="tiny"
        ),
    )
}


@dataclass
class Dataset:
    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int8]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int8]


def cache_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def make_data(n_train: int, n_test: int, seed: int = 20_241_128) -> Dataset:
    """Synthetic card payments: 64 float32 features, 8 of them NaN-bearing, non-linear label.

    50 continuous features (normal, log-normal money amounts, uniform, heavy-tailed), 8 features
    whose missingness is itself informative, and 6 integer-coded categoricals fed as numbers.
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    cols: list[npt.NDArray[np.float64]] = []
    cols += [rng.normal(size=n) for _ in range(15)]
    cols += [rng.lognormal(mean=3.0 + 0.2 * i, sigma=1.2, size=n) for i in range(10)]
    cols += [rng.uniform(0.0, 1.0, size=n) for _ in range(15)]
    cols += [rng.standard_t(df=2.5, size=n) for _ in range(10)]
    cols += [rng.gamma(shape=2.0, scale=1.0 + i, size=n) for i in range(8)]  # become NaN-bearing
    cols += [rng.integers(0, k, size=n).astype(np.float64) for k in CATEGORY_SIZES]
    x = np.stack(cols, axis=1)
    assert x.shape[1] == NUM_FEATURES
    z = x.copy()
    z[:, 15:25] = np.log(z[:, 15:25])
    effects = [rng.normal(0.0, 0.6, size=k) for k in CATEGORY_SIZES]
    logit = (
        -3.6
        + 0.8 * np.tanh(z[:, 0] * z[:, 1])
        + 0.6 * np.sin(2.0 * z[:, 2])
        + 0.5 * (z[:, 3] > 0.8) * (z[:, 4] < -0.2)
        + 0.35 * (z[:, 15] - 3.0)
        - 0.25 * np.abs(z[:, 16] - 3.2)
        + 0.7 * (z[:, 25] > 0.9) * (z[:, 17] > 4.0)
        + 0.5 * np.cos(6.0 * z[:, 26] * z[:, 27])
        + 0.3 * np.clip(z[:, 40], -4, 4)
        - 0.3 * np.clip(z[:, 41] * z[:, 5], -3, 3)
        + 0.2 * z[:, 6:15].sum(axis=1) / 3.0
        + 0.25 * np.sin(z[:, 28:40].sum(axis=1))
        + 0.15 * np.clip(z[:, 42:50], -3, 3).sum(axis=1)
        + 0.1 * np.log1p(z[:, 50:58]).sum(axis=1)
        - 0.08 * z[:, 50:58].mean(axis=1)
    )
    for j, eff in zip(range(58, 64), effects, strict=True):
        logit += eff[x[:, j].astype(np.int64)]
    logit += 0.5 * rng.normal(size=n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    # Informative missingness: positives lose a value more often than negatives.
    for j, rate in zip(range(50, 58), NAN_RATES, strict=True):
        p = rate * np.where(y == 1, 1.6, 0.95)
        x[rng.random(n) < p, j] = np.nan
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    return Dataset(x32[:n_train], y[:n_train], x32[n_train:], y[n_train:])


def load_data(cache: Path, n_train: int, n_test: int) -> Dataset:
    path = cache / f"data-v{DATA_VERSION}-{n_train}-{n_test}.npz"
    if path.is_file():
        with np.load(path) as z:
            return Dataset(z["x_train"], z["y_train"], z["x_test"], z["y_test"])
    data = make_data(n_train, n_test)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **asdict(data))
    tmp.rename(path)
    return data


def _auc(y: npt.NDArray[np.int8], p: npt.NDArray[np.float64]) -> float:
    order = np.argsort(p, kind="stable")
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _train_xgboost(spec: ModelSpec, data: Dataset, model_path: Path) -> tuple[float, Any]:
    """Train and save; returns the training seconds and the test-set probabilities."""
    import xgboost

    started = time.perf_counter()
    dtrain = xgboost.DMatrix(data.x_train, label=data.y_train, nthread=2)
    params = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_depth": spec.depth,
        "eta": spec.learning_rate,
        "nthread": 2,
        "seed": 1,
        "eval_metric": "auc",
    }
    booster = xgboost.train(params, dtrain, num_boost_round=spec.trees)
    seconds = time.perf_counter() - started
    booster.save_model(str(model_path))
    booster.set_param({"nthread": 1})
    return seconds, booster.inplace_predict(data.x_test)


def _train_lightgbm(spec: ModelSpec, data: Dataset, model_path: Path) -> tuple[float, Any]:
    """Train and save; returns the training seconds and the test-set probabilities."""
    import lightgbm

    started = time.perf_counter()
    params = {
        "objective": "binary",
        "num_leaves": spec.leaves,
        "max_depth": spec.depth or -1,
        "learning_rate": spec.learning_rate,
        "num_threads": 2,
        "seed": 1,
        "verbose": -1,
    }
    dtrain = lightgbm.Dataset(data.x_train, label=data.y_train)
    booster = lightgbm.train(params, dtrain, num_boost_round=spec.trees)
    seconds = time.perf_counter() - started
    booster.save_model(str(model_path))
    return seconds, booster.predict(data.x_test, num_threads=1)


def train(spec: ModelSpec, data: Dataset, cache: Path) -> tuple[Path, dict[str, Any]]:
    """Train (or reuse) a model; returns its file and facts: key, train seconds, test AUC."""
    key = f"{spec.name}-{cache_key(asdict(spec), DATA_VERSION, data.x_train.shape)}"
    folder = cache / "models" / key
    info_path = folder / "info.json"
    suffix = ".ubj" if spec.framework == "xgboost" else ".txt"
    model_path = folder / f"model{suffix}"
    if info_path.is_file() and model_path.is_file():
        return model_path, json.loads(info_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    fit = _train_xgboost if spec.framework == "xgboost" else _train_lightgbm
    seconds, p = fit(spec, data, model_path)
    info = {
        "key": key,
        "train_seconds": round(seconds, 1),
        "test_auc": round(_auc(data.y_test, np.asarray(p, dtype=np.float64)), 4),
        "positive_rate": round(float(data.y_train.mean()), 4),
    }
    info_path.write_text(json.dumps(info, indent=1))
    return model_path, info
