"""load_source: every supported file and object is read as its framework and task, and models the
compiler does not handle are refused by name before anything is built."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from forestgate.compiler.source import load_source
from forestgate.errors import CompileError, UnsupportedModel
from tests.sources import NUM_FEATURES, Case, Rows


def test_every_source_reads_as_its_framework_and_task(case: Case) -> None:
    source = load_source(case.trained.model)
    assert (source.framework, source.task) == (case.recipe.framework, case.task)
    assert (source.accepts_nan, source.accepts_inf) == (
        case.recipe.accepts_nan,
        case.recipe.accepts_inf,
    )
    assert source.treelite_model.num_feature == NUM_FEATURES
    is_file = isinstance(case.trained.model, Path)
    assert source.file == (str(case.trained.model) if is_file else None)


# XGBoost warns that it guesses JSON for a suffix it does not know: the guess is the point here.
@pytest.mark.filterwarnings("ignore:.*Unknown file format. `bin`. Using JSON:UserWarning")
@pytest.mark.parametrize(
    ("recipe_id", "new_name"),
    [("xgboost-json", "model.bin"), ("lightgbm-text", "model")],
    ids=["json-content", "lightgbm-content"],
)
def test_file_without_a_known_suffix_is_read_by_its_content(
    compiled_case: Any, tmp_path: Path, recipe_id: str, new_name: str
) -> None:
    original = compiled_case(recipe_id)
    renamed = tmp_path / new_name
    shutil.copy(original.trained.model, renamed)
    source = load_source(renamed)
    assert source.framework == original.recipe.framework
    x = np.random.default_rng(0).normal(size=(20, NUM_FEATURES)).astype(np.float32)
    np.testing.assert_allclose(source.predict(x), original.reference(x), rtol=1e-6)


@pytest.fixture(scope="module")
def small(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    return rows.x_without_nan[:300], rows.binary[:300]


def _objects(small: tuple[np.ndarray, np.ndarray]) -> dict[str, tuple[object, str]]:
    import lightgbm
    import xgboost
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        IsolationForest,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    x, y = small
    categorical = np.column_stack([np.arange(len(x)) % 5, x[:, 1:]])

    def xgb(objective: str, **extra: Any) -> object:
        data = xgboost.DMatrix(x, label=y)
        if objective.startswith("rank:"):
            data.set_group([150, 150])
        params = {"objective": objective, "max_depth": 2, "nthread": 1, **extra}
        return xgboost.train(params, data, num_boost_round=2)

    ranker = lightgbm.train(
        {"objective": "lambdarank", "verbose": -1, "num_threads": 1},
        lightgbm.Dataset(x, label=y, group=[150, 150]),
        num_boost_round=2,
    )
    two_targets = xgboost.XGBRegressor(n_estimators=2, tree_method="hist", nthread=1)
    two_targets.fit(x, np.column_stack([x[:, 0], x[:, 1]]))
    return {
        "decision-tree": (
            DecisionTreeClassifier(max_depth=2).fit(x, y),
            r"DecisionTreeClassifier: unsupported model type sklearn\.tree\._classes\.Decision",
        ),
        "logistic": (LogisticRegression().fit(x, y), r"unsupported model type sklearn\.linear"),
        "isolation-forest": (IsolationForest(n_estimators=2).fit(x), r"unsupported model type"),
        "plain-object": (object(), r"^object: unsupported model type builtins\.object"),
        "unfitted": (RandomForestClassifier(), r"RandomForestClassifier is not fitted"),
        "categorical": (
            HistGradientBoostingClassifier(max_iter=2, categorical_features=[0]).fit(
                categorical, y
            ),
            r"HistGradientBoostingClassifier: native categorical features are not supported",
        ),
        "xgboost-ranking": (xgb("rank:pairwise"), r"objective 'rank:pairwise' is not supported"),
        "xgboost-softmax": (
            xgb("multi:softmax", num_class=2),
            r"objective 'multi:softmax' is not supported \(use binary:logistic, multi:softprob",
        ),
        "lightgbm-ranking": (ranker, r"objective 'lambdarank' is not supported"),
        "multi-target": (
            two_targets,
            r"XGBoost model: multi-target models \(2 targets\) are not supported",
        ),
    }


REFUSALS = [
    "decision-tree", "logistic", "isolation-forest", "plain-object", "unfitted", "categorical",
    "xgboost-ranking", "xgboost-softmax", "lightgbm-ranking", "multi-target",
]  # fmt: skip


@pytest.fixture(scope="module")
def refused(small: tuple[np.ndarray, np.ndarray]) -> dict[str, tuple[object, str]]:
    return _objects(small)


@pytest.mark.parametrize("kind", REFUSALS)
def test_unsupported_model_is_refused_by_name(
    refused: dict[str, tuple[object, str]], kind: str
) -> None:
    model, message = refused[kind]
    expected = CompileError if kind == "unfitted" else UnsupportedModel
    with pytest.raises(expected, match=message):
        load_source(model)


def test_refusal_from_a_file_names_the_file(
    refused: dict[str, tuple[object, str]], tmp_path: Path
) -> None:
    import joblib

    path = tmp_path / "two-targets.json"
    refused["multi-target"][0].save_model(path)  # type: ignore[attr-defined]
    with pytest.raises(UnsupportedModel, match=rf"^{re.escape(str(path))}: multi-target models"):
        load_source(path)
    path = tmp_path / "tree.joblib"
    joblib.dump(refused["decision-tree"][0], path)
    with pytest.raises(UnsupportedModel, match=rf"^{re.escape(str(path))}: unsupported model"):
        load_source(path)
