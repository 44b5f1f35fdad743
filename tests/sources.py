"""The model sources under test: one small model per supported framework, file format and task,
each with its framework's own prediction kept as the reference to compare compiled output with.

Every model is a few trees over NUM_FEATURES columns of a few thousand synthetic rows with ~5%
NaN (classic GradientBoosting, which cannot train on NaN, gets them as zeros), so a whole run
compiles them in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from forestgate.engine.calibration import Calibration
from forestgate.engine.model import CompiledModel
from forestgate.engine.reference import Reference as ReferenceDistributions

NUM_FEATURES = 7
NUM_CLASSES = 3
# Names given to the sources that carry them (XGBoost feature_names, LightGBM feature_name()).
NAMES = [
    "amount_log", "card_age_days", "attempts_24h", "merchant_risk", "hour_of_day",
    "issuer_approval_30d", "amount_vs_typical",
]  # fmt: skip
DEFAULT_NAMES = [f"f{i}" for i in range(NUM_FEATURES)]

Reference = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class Rows:
    """Training rows: x float32 [n, F] with NaN, and a label per task."""

    x: npt.NDArray[np.float32]
    binary: npt.NDArray[np.int64]
    multiclass: npt.NDArray[np.int64]
    regression: npt.NDArray[np.float64]

    @property
    def x_without_nan(self) -> npt.NDArray[np.float32]:
        return np.nan_to_num(self.x, nan=0.0)


def synthetic_rows(n: int = 3_000, seed: int = 0) -> Rows:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, NUM_FEATURES)).astype(np.float32)
    # Exact zeros in one column give LightGBM its +-1e-35 zero-bin splits.
    x[rng.random(n) < 0.3, 2] = 0.0
    x[rng.random(x.shape) < 0.05] = np.nan
    z = np.nan_to_num(x)
    logit = 1.5 * z[:, 0] - z[:, 1] + 0.8 * np.sign(z[:, 2]) + 0.5 * z[:, 3] * z[:, 4]
    binary = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    multiclass = np.digitize(logit + rng.normal(scale=0.5, size=n), [-1.0, 1.0]).astype(np.int64)
    regression = 3.0 * z[:, 0] + z[:, 1] ** 2 - 2.0 * (z[:, 2] > 0) + rng.normal(scale=0.1, size=n)
    return Rows(x=x, binary=binary, multiclass=multiclass, regression=regression)


@dataclass(frozen=True)
class Trained:
    """What a recipe produces: the input compile_model gets (a file path or an object), the
    framework's own prediction, and the feature names the manifest must list."""

    model: object
    reference: Reference
    feature_names: list[str]


@dataclass(frozen=True)
class Recipe:
    """One source under test. `accepts_nan`/`accepts_inf` say what the framework's own predict
    takes; tests check both the framework and the bundle manifest against them."""

    id: str
    framework: str
    task: str
    accepts_nan: bool
    accepts_inf: bool
    train: Callable[[Rows, Path], Trained]


@dataclass(frozen=True)
class Case:
    """A recipe trained and compiled once per run, its bundle opened."""

    recipe: Recipe
    trained: Trained
    bundle_dir: Path
    compiled: CompiledModel
    thresholds: list[npt.NDArray[np.float64]]

    @property
    def id(self) -> str:
        return self.recipe.id

    @property
    def task(self) -> str:
        return self.recipe.task

    def reference(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return np.asarray(self.trained.reference(x), dtype=np.float64)


# --- XGBoost ------------------------------------------------------------------------------------


def _xgb_params(objective: str, **extra: Any) -> dict[str, Any]:
    return {"objective": objective, "max_depth": 3, "nthread": 1, "seed": 0, **extra}


def _xgb_booster_file(rows: Rows, where: Path, *, objective: str, label: Any, suffix: str) -> Path:
    import xgboost

    params = _xgb_params(objective)
    if objective.startswith("multi:"):
        params["num_class"] = NUM_CLASSES
    booster = xgboost.train(params, xgboost.DMatrix(rows.x, label=label), num_boost_round=4)
    path = where / f"xgboost-{objective.replace(':', '-')}{suffix}"
    booster.save_model(path)
    return path


def _xgb_file_reference(path: Path) -> Reference:
    import xgboost

    booster = xgboost.Booster(model_file=str(path))
    return booster.inplace_predict


def xgboost_json(rows: Rows, where: Path) -> Trained:
    path = _xgb_booster_file(
        rows, where, objective="binary:logistic", label=rows.binary, suffix=".json"
    )
    return Trained(path, _xgb_file_reference(path), DEFAULT_NAMES)


def xgboost_ubj(rows: Rows, where: Path) -> Trained:
    # count:poisson: a regression whose output goes through exp(), unlike the plain one below.
    path = _xgb_booster_file(
        rows,
        where,
        objective="count:poisson",
        label=np.round(np.abs(rows.regression)),
        suffix=".ubj",
    )
    return Trained(path, _xgb_file_reference(path), DEFAULT_NAMES)


def xgboost_classifier(rows: Rows, where: Path) -> Trained:
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=4, max_depth=3, nthread=1, random_state=0)
    model.fit(rows.x, rows.binary)
    model.get_booster().feature_names = NAMES
    return Trained(model, lambda x: model.predict_proba(x)[:, 1], NAMES)


def xgboost_multiclass(rows: Rows, where: Path) -> Trained:
    import xgboost

    model = xgboost.XGBClassifier(
        n_estimators=4, max_depth=3, nthread=1, random_state=0, objective="multi:softprob"
    )
    model.fit(rows.x, rows.multiclass)
    return Trained(model, model.predict_proba, DEFAULT_NAMES)


def xgboost_regressor(rows: Rows, where: Path) -> Trained:
    import xgboost

    model = xgboost.XGBRegressor(n_estimators=4, max_depth=3, nthread=1, random_state=0)
    model.fit(rows.x, rows.regression)
    return Trained(model, model.predict, DEFAULT_NAMES)


# --- LightGBM -----------------------------------------------------------------------------------

_LGB = {"n_estimators": 4, "num_leaves": 8, "min_child_samples": 10, "verbose": -1, "n_jobs": 1}


def lightgbm_text(rows: Rows, where: Path) -> Trained:
    import lightgbm

    params = {"objective": "binary", "num_leaves": 8, "verbose": -1, "num_threads": 1, "seed": 0}
    data = lightgbm.Dataset(rows.x, label=rows.binary, feature_name=NAMES)
    booster = lightgbm.train(params, data, num_boost_round=4)
    path = where / "lightgbm-binary.txt"
    booster.save_model(path)
    reference = lightgbm.Booster(model_file=str(path))
    return Trained(path, lambda x: reference.predict(x, num_threads=1), NAMES)


def lightgbm_classifier(rows: Rows, where: Path) -> Trained:
    import lightgbm

    model = lightgbm.LGBMClassifier(**_LGB).fit(rows.x, rows.binary)
    return Trained(model, lambda x: model.predict_proba(x)[:, 1], DEFAULT_NAMES)


def lightgbm_multiclass(rows: Rows, where: Path) -> Trained:
    import lightgbm

    model = lightgbm.LGBMClassifier(**_LGB).fit(rows.x, rows.multiclass)
    return Trained(model, model.predict_proba, DEFAULT_NAMES)


def lightgbm_regressor(rows: Rows, where: Path) -> Trained:
    import lightgbm

    model = lightgbm.LGBMRegressor(**_LGB).fit(rows.x, rows.regression)
    return Trained(model, model.predict, DEFAULT_NAMES)


def lightgbm_zero_split(rows: Rows, where: Path) -> Trained:
    # The label separates negative values from the exact zeros of column 2, so LightGBM splits at
    # its zero bin's lower edge, -1e-35: the threshold of the known divergence (test_differential).
    import lightgbm

    label = (np.nan_to_num(rows.x[:, 2], nan=1.0) < 0).astype(np.int64)
    params = {"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 1, "seed": 0}
    booster = lightgbm.train(params, lightgbm.Dataset(rows.x, label=label), num_boost_round=3)
    path = where / "lightgbm-zero-split.txt"
    booster.save_model(path)
    reference = lightgbm.Booster(model_file=str(path))
    return Trained(path, lambda x: reference.predict(x, num_threads=1), DEFAULT_NAMES)


# --- scikit-learn (saved with joblib, read back for the reference) -----------------------------


def _sklearn(kind: str, task: str) -> Callable[[Rows, Path], Trained]:
    def train(rows: Rows, where: Path) -> Trained:
        import joblib
        from sklearn import ensemble

        estimator_type = getattr(ensemble, kind)
        size = {"max_iter": 4} if kind.startswith("Hist") else {"n_estimators": 4}
        depth = {} if kind.startswith("Hist") else {"max_depth": 4}
        estimator = estimator_type(random_state=0, **size, **depth)
        features = rows.x_without_nan if kind.startswith("GradientBoosting") else rows.x
        label = {"binary": rows.binary, "multiclass": rows.multiclass}.get(task, rows.regression)
        estimator.fit(features, label)
        path = where / f"{kind}-{task}.joblib"
        joblib.dump(estimator, path)
        loaded = joblib.load(path)
        if task == "binary":
            return Trained(path, lambda x: loaded.predict_proba(x)[:, 1], DEFAULT_NAMES)
        if task == "multiclass":
            return Trained(path, loaded.predict_proba, DEFAULT_NAMES)
        return Trained(path, loaded.predict, DEFAULT_NAMES)

    return train


def _sklearn_recipes() -> list[Recipe]:
    recipes = []
    for family in ("RandomForest", "ExtraTrees", "GradientBoosting", "HistGradientBoosting"):
        # Forests route NaN but reject inf; classic boosting rejects both; histogram boosting
        # takes both (checked against scikit-learn itself in test_differential).
        nan = family != "GradientBoosting"
        inf = family == "HistGradientBoosting"
        for task in ("binary", "multiclass", "regression"):
            kind = family + ("Regressor" if task == "regression" else "Classifier")
            recipes.append(
                Recipe(
                    f"sklearn-{kind}-{task}", "scikit-learn", task, nan, inf, _sklearn(kind, task)
                )
            )
    return recipes


RECIPES: dict[str, Recipe] = {
    r.id: r
    for r in [
        Recipe("xgboost-json", "xgboost", "binary", True, True, xgboost_json),
        Recipe("xgboost-ubj", "xgboost", "regression", True, True, xgboost_ubj),
        Recipe("xgboost-classifier", "xgboost", "binary", True, True, xgboost_classifier),
        Recipe("xgboost-multiclass", "xgboost", "multiclass", True, True, xgboost_multiclass),
        Recipe("xgboost-regressor", "xgboost", "regression", True, True, xgboost_regressor),
        Recipe("lightgbm-text", "lightgbm", "binary", True, True, lightgbm_text),
        Recipe("lightgbm-classifier", "lightgbm", "binary", True, True, lightgbm_classifier),
        Recipe("lightgbm-multiclass", "lightgbm", "multiclass", True, True, lightgbm_multiclass),
        Recipe("lightgbm-regressor", "lightgbm", "regression", True, True, lightgbm_regressor),
        Recipe("lightgbm-zero-split", "lightgbm", "binary", True, True, lightgbm_zero_split),
        *_sklearn_recipes(),
    ]
}


def compile_case(recipe: Recipe, *, rows: Rows, model_dir: Path, repository: Path) -> Case:
    """Train the recipe's model, compile it into `repository/<id>/1` and open the bundle."""
    from forestgate.compiler.pipeline import compile_model
    from forestgate.compiler.source import load_source
    from forestgate.compiler.verify import split_thresholds

    trained = recipe.train(rows, model_dir)
    result = compile_model(trained.model, name=recipe.id, version="1", repository=repository)
    compiled = CompiledModel.open(result.bundle_dir)
    thresholds = split_thresholds(load_source(trained.model).treelite_model)
    return Case(recipe, trained, result.bundle_dir, compiled, thresholds)


@dataclass(frozen=True)
class Calibrated:
    """The XGBoost binary model compiled again with an isotonic map (fitted by scikit-learn on
    its compiled outputs), reference distributions and training metrics."""

    bundle_dir: Path
    isotonic: Any
    calibration: Calibration
    reference: ReferenceDistributions
    metrics: dict[str, Any]
