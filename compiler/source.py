"""Model sources: read a trained model from a file or an object into Treelite, with its framework's
own predict function kept for verification.

Supported: XGBoost (JSON and UBJSON files, Booster, XGBClassifier/XGBRegressor), LightGBM (text
model files, Booster, LGBMClassifier/LGBMRegressor), and scikit-learn RandomForest, ExtraTrees,
GradientBoosting and HistGradientBoosting classifiers and regressors saved with joblib.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import treelite

from forestgate.errors import CompileError, InvalidInput, MissingFile, UnsupportedModel

PredictFn = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]

_SKLEARN_SUPPORTED = (
    "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
    "ExtraTreesRegressor", "GradientBoostingClassifier", "GradientBoostingRegressor",
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
)  # fmt: skip
_LIGHTGBM_DEFAULT_NAME = re.compile(r"^Column_\d+$")


@dataclass(frozen=True)
class SourceModel:
    """A model read from its framework: the Treelite form to compile and the reference to verify.

    `predict` returns what a user of the framework would call the model's output: the positive
    class probability for binary classifiers ([n]), class probabilities ([n, K]) for multi-class,
    the prediction for regressors ([n]). `output_column` picks that value out of the compiled
    library's raw outputs when the library writes more than one per row.
    """

    framework: str
    framework_version: str
    model_type: str
    objective: str
    task: str
    treelite_model: treelite.Model
    predict: PredictFn
    feature_names: list[str] | None
    classes: list[Any] | None
    output_column: int | None
    accepts_nan: bool
    accepts_inf: bool
    file: str | None = None


def load_source(model: object) -> SourceModel:
    """Read a model from a path (str or Path) or from an in-memory framework object."""
    if isinstance(model, str | Path):
        return _load_file(Path(model))
    return _from_object(model, file=None)


def _load_file(path: Path) -> SourceModel:
    if not path.exists():
        raise MissingFile(f"{path}: no such file")
    if not path.is_file():
        raise InvalidInput(f"{path}: not a file")
    try:
        head = path.read_bytes()[:16]
    except OSError as exc:
        raise CompileError(f"{path}: cannot read ({exc.strerror})") from None
    suffix = path.suffix.lower()
    if not head:
        raise CompileError(f"{path}: file is empty")
    try:
        if suffix in {".joblib", ".pkl", ".pickle"}:
            import joblib

            obj = joblib.load(path)
            return _from_object(obj, file=str(path))
        if suffix in {".json", ".ubj", ".ubjson"} or (head[:1] == b"{" and suffix != ".txt"):
            import xgboost

            xgb_booster = xgboost.Booster()
            xgb_booster.load_model(str(path))
            return _from_xgboost(xgb_booster, file=str(path))
        if head.startswith(b"tree") or suffix in {".txt", ".lgb"}:
            import lightgbm

            from forestgate.compiler.codegen import native_output_to_log

            _check_lightgbm_text(path)
            with native_output_to_log("lightgbm"):
                lgb_booster = lightgbm.Booster(model_file=str(path))
            return _from_lightgbm(lgb_booster, file=str(path))
    except CompileError:
        raise
    except Exception as exc:
        kind = {".json": "XGBoost JSON", ".ubj": "XGBoost UBJSON", ".txt": "LightGBM text"}.get(
            suffix, "model"
        )
        raise CompileError(f"{path}: not a readable {kind} file ({_one_line(exc)})") from None
    raise UnsupportedModel(
        f"{path}: unknown model file type {suffix or '(no suffix)'}; expected an XGBoost "
        ".json/.ubj, a LightGBM .txt, or a scikit-learn model saved with joblib (.joblib/.pkl)"
    )


def _check_lightgbm_text(path: Path) -> None:
    """Refuse a truncated LightGBM text model before LightGBM parses it.

    LightGBM's parser crashes the process (a segfault or abort, measured with LightGBM 4.7) on a
    model file cut inside its trees or its parameters section, instead of raising. Every model
    file it writes starts with "tree", has an "end of trees" line and closes a "parameters:"
    section with "end of parameters"; other text is left to LightGBM, which rejects it cleanly.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("tree"):
        return
    if "\nend of trees" not in text:
        raise CompileError(f"{path}: truncated LightGBM text model (no 'end of trees' line)")
    if "\nparameters:" in text and "\nend of parameters" not in text:
        raise CompileError(f"{path}: truncated LightGBM text model (no 'end of parameters' line)")


def _from_object(obj: object, file: str | None) -> SourceModel:
    where = file or type(obj).__name__
    module = type(obj).__module__.split(".")[0]
    if module == "xgboost":
        import xgboost

        if isinstance(obj, xgboost.Booster):
            return _from_xgboost(obj, file=file)
        if isinstance(obj, xgboost.XGBModel):
            return _from_xgboost(obj.get_booster(), file=file, estimator=obj)
    if module == "lightgbm":
        import lightgbm

        if isinstance(obj, lightgbm.Booster):
            return _from_lightgbm(obj, file=file)
        if isinstance(obj, lightgbm.LGBMModel):
            return _from_lightgbm(obj.booster_, file=file, estimator=obj)
    if module == "sklearn" and type(obj).__name__ in _SKLEARN_SUPPORTED:
        return _from_sklearn(obj, file=file)
    raise UnsupportedModel(
        f"{where}: unsupported model type {type(obj).__module__}.{type(obj).__name__}; "
        "supported are XGBoost and LightGBM boosters and estimators and scikit-learn "
        + ", ".join(_SKLEARN_SUPPORTED)
    )


def _task_of(model: treelite.Model, where: str) -> tuple[str, int]:
    header = model.get_header_accessor()
    num_target = int(header.get_field("num_target")[0])
    num_class = int(max(header.get_field("num_class")))
    if num_target != 1:
        raise UnsupportedModel(
            f"{where}: multi-target models ({num_target} targets) are not supported"
        )
    if num_class > 1:
        return "multiclass", num_class
    if header.get_field("postprocessor") == "sigmoid":
        return "binary", 1
    return "regression", 1


def _from_xgboost(booster: Any, file: str | None, estimator: Any = None) -> SourceModel:
    import xgboost

    config = json.loads(booster.save_config())
    objective = config["learner"]["objective"]["name"]
    if objective.startswith(("rank:", "survival:")) or objective == "multi:softmax":
        raise UnsupportedModel(
            f"{file or 'XGBoost model'}: objective {objective!r} is not supported "
            "(use binary:logistic, multi:softprob or a reg: objective)"
        )
    tl_model = _wrap_treelite(lambda: treelite.frontend.from_xgboost(booster), file, "XGBoost")
    task, _ = _task_of(tl_model, file or "XGBoost model")
    booster = booster.copy()
    booster.set_param({"nthread": 1})

    def predict(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return np.asarray(booster.inplace_predict(x), dtype=np.float64)

    classes = list(getattr(estimator, "classes_", [])) or None
    return SourceModel(
        framework="xgboost", framework_version=xgboost.__version__,
        model_type=type(estimator or booster).__name__, objective=objective, task=task,
        treelite_model=tl_model, predict=predict, feature_names=booster.feature_names,
        classes=_plain(classes), output_column=None, accepts_nan=True, accepts_inf=True,
        file=file,
    )  # fmt: skip


def _from_lightgbm(booster: Any, file: str | None, estimator: Any = None) -> SourceModel:
    import lightgbm

    objective = str(booster.params.get("objective") or _lightgbm_objective(booster))
    if objective.startswith(("lambdarank", "rank_xendcg")):
        raise UnsupportedModel(
            f"{file or 'LightGBM model'}: objective {objective!r} is not supported"
        )
    tl_model = _wrap_treelite(lambda: treelite.frontend.from_lightgbm(booster), file, "LightGBM")
    task, _ = _task_of(tl_model, file or "LightGBM model")
    names = booster.feature_name()
    if all(_LIGHTGBM_DEFAULT_NAME.match(n) for n in names):
        names = None  # LightGBM's made-up Column_i names carry no meaning

    def predict(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)

    classes = list(getattr(estimator, "classes_", [])) or None
    return SourceModel(
        framework="lightgbm", framework_version=lightgbm.__version__,
        model_type=type(estimator or booster).__name__, objective=objective, task=task,
        treelite_model=tl_model, predict=predict, feature_names=names, classes=_plain(classes),
        output_column=None, accepts_nan=True, accepts_inf=True, file=file,
    )  # fmt: skip


def _lightgbm_objective(booster: Any) -> str:
    for line in booster.model_to_string(num_iteration=0).splitlines()[:20]:
        if line.startswith("objective="):
            return str(line.split("=", 1)[1].split()[0])
    return "unknown"


def _from_sklearn(estimator: Any, file: str | None) -> SourceModel:
    import sklearn

    kind = type(estimator).__name__
    where = file or kind
    if not hasattr(estimator, "n_features_in_"):
        raise CompileError(f"{where}: {kind} is not fitted")
    if getattr(estimator, "is_categorical_", None) is not None and np.any(
        estimator.is_categorical_
    ):
        raise UnsupportedModel(f"{where}: native categorical features are not supported")
    tl_model = _wrap_treelite(
        lambda: treelite.sklearn.import_model(estimator), file, "scikit-learn"
    )
    task, num_class = _task_of(tl_model, where)
    is_classifier = hasattr(estimator, "predict_proba")
    output_column: int | None = None
    if is_classifier:
        n_classes = len(estimator.classes_)
        if n_classes == 2:
            task = "binary"
            # Forests average both class probabilities; boosting writes one sigmoid output.
            output_column = 1 if num_class == 2 else None

            def predict(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
                return np.asarray(_bare(estimator.predict_proba, x)[:, 1], dtype=np.float64)
        else:
            task = "multiclass"

            def predict(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
                return np.asarray(_bare(estimator.predict_proba, x), dtype=np.float64)
    else:
        task = "regression"

        def predict(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
            return np.asarray(_bare(estimator.predict, x), dtype=np.float64)

    names = getattr(estimator, "feature_names_in_", None)
    # Trees and histogram boosting route NaN natively; classic GradientBoosting rejects it.
    accepts_nan = not kind.startswith("GradientBoosting")
    accepts_inf = kind.startswith("HistGradientBoosting")
    return SourceModel(
        framework="scikit-learn", framework_version=sklearn.__version__, model_type=kind,
        objective=str(getattr(estimator, "loss", getattr(estimator, "criterion", ""))),
        task=task, treelite_model=tl_model, predict=predict,
        feature_names=None if names is None else [str(n) for n in names],
        classes=_plain(list(estimator.classes_)) if is_classifier else None,
        output_column=output_column, accepts_nan=accepts_nan, accepts_inf=accepts_inf,
        file=file,
    )  # fmt: skip


def _bare(method: Callable[[Any], Any], x: npt.NDArray[np.float32]) -> Any:
    """Call a scikit-learn estimator with a bare array, without its feature-name warning.

    An estimator fitted on a DataFrame warns on every array ("X does not have valid feature
    names"); the columns are its own, in order, so the warning would only be noise on the CLI.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "X does not have valid feature names", UserWarning)
        return method(x)


def _wrap_treelite(load: Callable[[], treelite.Model], file: str | None, framework: str) -> Any:
    try:
        return load()
    except UnsupportedModel:
        raise
    except Exception as exc:
        raise UnsupportedModel(
            f"{file or framework + ' model'}: Treelite cannot import this {framework} model "
            f"({_one_line(exc)})"
        ) from None


def _plain(values: list[Any] | None) -> list[Any] | None:
    """numpy scalars -> JSON-serialisable Python values."""
    if values is None:
        return None
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def library_versions() -> dict[str, str]:
    return {"treelite": dist_version("treelite"), "tl2cgen": dist_version("tl2cgen")}
