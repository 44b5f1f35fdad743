"""The feature schema: parsing JSON and YAML schema files, every refusal naming the file and the
entry, and reconciling the schema with the names the model carries."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from forestgate.compiler.features import read_schema, reconcile
from forestgate.compiler.pipeline import compile_model
from forestgate.engine.manifest import Feature
from forestgate.errors import CompileError
from tests.sources import NAMES, NUM_FEATURES, Case, Rows

SCHEMA_YAML = """\
features:
  - {name: amount_log, type: float, min: -5, max: 15, description: log of the amount}
  - {name: is_cross_border, type: bool}
  - {name: attempts_24h, type: int, min: 0}
  - {name: mcc, type: category}
  - hour_of_day
"""
SCHEMA_FEATURES = [
    Feature("amount_log", "float", -5, 15),
    Feature("is_cross_border", "bool"),
    Feature("attempts_24h", "int", 0, None),
    Feature("mcc", "category"),
    Feature("hour_of_day"),
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def schema_for(names: list[str], tmp_path: Path, name: str = "schema.yaml") -> Path:
    return write(tmp_path, name, "features:\n" + "".join(f"  - {n}\n" for n in names))


def test_yaml_schema_gives_names_types_and_ranges(tmp_path: Path) -> None:
    assert read_schema(write(tmp_path, "schema.yaml", SCHEMA_YAML)) == SCHEMA_FEATURES


def test_json_schema_reads_like_yaml(tmp_path: Path) -> None:
    entries = [
        {"name": "amount_log", "type": "float", "min": -5, "max": 15},
        {"name": "is_cross_border", "type": "bool"},
        {"name": "attempts_24h", "type": "int", "min": 0},
        {"name": "mcc", "type": "category"},
        "hour_of_day",
    ]
    as_object = write(tmp_path, "schema.json", json.dumps({"features": entries}))
    as_list = write(tmp_path, "list.json", json.dumps(entries))
    assert read_schema(as_object) == SCHEMA_FEATURES
    assert read_schema(as_list) == SCHEMA_FEATURES


def test_bare_names_are_floats_without_range(tmp_path: Path) -> None:
    assert read_schema(schema_for(["a", "b"], tmp_path)) == [Feature("a"), Feature("b")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "features:\n  - a\n  - {name: b, unit: ms}\n",
            r"features\[1\]: unknown field\(s\) \['unit'\]",
        ),
        ("features: [a]\nversion: 2\n", r"unknown top-level field\(s\) \['version'\]"),
        (
            "features:\n  - {name: a, type: string}\n",
            r"features\[0\]\.type: 'string' is not one of",
        ),
        (
            "features:\n  - a\n  - {name: b, min: 5, max: 1}\n",
            r"features\[1\]: min 5 is greater than max 1",
        ),
        (
            "features:\n  - {name: a, min: low}\n",
            r"features\[0\]\.min: expected a number, got 'low'",
        ),
        (
            "features:\n  - {name: a, max: true}\n",
            r"features\[0\]\.max: expected a number, got True",
        ),
        (
            "features:\n  - {name: a, max: .nan}\n",
            r"features\[0\]\.max: expected a number, got nan",
        ),
        ("features:\n  - a\n  - b\n  - a\n", r"duplicate feature name\(s\) \['a'\]"),
        ("features:\n  - a\n  - {type: int}\n", r"features\[1\]: expected a name or a mapping"),
        ("features:\n  - 7\n", r"features\[0\]: expected a name or a mapping"),
        ("features: []\n", r"expected a non-empty 'features' list"),
        ("name: a\n", r"unknown top-level field\(s\) \['name'\]"),
        ("features: [a, b\n", r"not valid yaml"),
    ],
    ids=[
        "unknown-field",
        "unknown-top-level",
        "bad-type",
        "min-over-max",
        "min-not-number",
        "max-bool",
        "max-nan",
        "duplicates",
        "no-name",
        "number",
        "empty",
        "no-features",
        "syntax",
    ],
)
def test_bad_schema_is_refused_naming_file_and_entry(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, "schema.yaml", text)
    with pytest.raises(CompileError, match=rf"^{re.escape(str(path))}: {message}"):
        read_schema(path)


def test_bad_json_schema_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "schema.json", '{"features": ["a",]}')
    with pytest.raises(CompileError, match=rf"^{re.escape(str(path))}: not valid json"):
        read_schema(path)


def test_missing_schema_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"nope.yaml: cannot read feature schema"):
        read_schema(tmp_path / "nope.yaml")


def test_reconcile_refuses_a_schema_of_the_wrong_length(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    with pytest.raises(
        CompileError, match=rf"^{re.escape(str(path))}: lists 2 features, model.json takes 3"
    ):
        reconcile(
            num_features=3,
            model_names=None,
            schema=[Feature("a"), Feature("b")],
            schema_path=path,
            model_label="model.json",
        )


def test_reconcile_refuses_names_that_differ_from_the_model(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    with pytest.raises(CompileError, match=r"feature 1 is 'b', but model.json calls it 'c'"):
        reconcile(
            num_features=2,
            model_names=["a", "c"],
            schema=[Feature("a"), Feature("b")],
            schema_path=path,
            model_label="model.json",
        )


def test_reconcile_takes_names_from_the_model_then_numbers_them() -> None:
    named = reconcile(
        num_features=2, model_names=["x", "y"], schema=None, schema_path=None, model_label="m"
    )
    unnamed = reconcile(
        num_features=2, model_names=None, schema=None, schema_path=None, model_label="m"
    )
    assert named == [Feature("x"), Feature("y")]
    assert unnamed == [Feature("f0"), Feature("f1")]


def test_manifest_lists_the_names_the_model_carries(case: Case) -> None:
    """XGBoost feature_names and LightGBM feature_name() reach the manifest; LightGBM's made-up
    Column_i names and unnamed models give f0, f1, ..."""
    assert case.compiled.manifest.feature_names == case.trained.feature_names


# --- end to end through compile_model ------------------------------------------------------------


def test_schema_that_matches_the_model_lands_in_the_manifest(
    compiled_case: Callable[[str], Case], tmp_path: Path
) -> None:
    named = compiled_case("xgboost-classifier")  # carries NAMES
    schema = write(
        tmp_path,
        "schema.json",
        json.dumps(
            {
                "features": [
                    {"name": NAMES[0], "type": "float", "min": -10, "max": 10},
                    {"name": NAMES[1], "type": "int", "min": 0},
                    *NAMES[2:],
                ]
            }
        ),
    )
    result = compile_model(
        named.trained.model,
        name="named",
        version="1",
        repository=tmp_path / "repository",
        features=schema,
    )
    assert result.manifest.features == (
        Feature(NAMES[0], "float", -10, 10),
        Feature(NAMES[1], "int", 0, None),
        *(Feature(n) for n in NAMES[2:]),
    )


@pytest.mark.parametrize(
    ("recipe_id", "names", "message"),
    [
        (
            "xgboost-classifier",
            [*NAMES[:3], "mcc", *NAMES[4:]],
            rf"feature 3 is 'mcc', but xgboost XGBClassifier calls it '{NAMES[3]}'",
        ),
        (
            "lightgbm-text",
            NAMES[:-1],
            rf"lists {NUM_FEATURES - 1} features, .*lightgbm-binary.txt takes {NUM_FEATURES}",
        ),
        (
            "sklearn-RandomForestClassifier-binary",
            [f"c{i}" for i in range(NUM_FEATURES + 1)],
            rf"lists {NUM_FEATURES + 1} features, .*RandomForestClassifier-binary.joblib takes",
        ),
    ],
    ids=["name-mismatch", "too-few", "too-many"],
)
def test_schema_that_disagrees_with_the_model_fails_the_compile(
    compiled_case: Callable[[str], Case],
    tmp_path: Path,
    recipe_id: str,
    names: list[str],
    message: str,
) -> None:
    schema = schema_for(names, tmp_path)
    repository = tmp_path / "repository"
    with pytest.raises(CompileError, match=rf"^{re.escape(str(schema))}: {message}"):
        compile_model(
            compiled_case(recipe_id).trained.model,
            name="m",
            version="1",
            repository=repository,
            features=schema,
        )
    assert not repository.exists()


def test_scikit_learn_names_reach_the_manifest_without_warnings(rows: Rows, tmp_path: Path) -> None:
    """An estimator fitted on a DataFrame carries feature_names_in_ and warns whenever it is
    given a bare array; verification must stay quiet (warnings are errors in this suite)."""
    from sklearn.ensemble import RandomForestRegressor

    estimator = RandomForestRegressor(n_estimators=2, max_depth=3, random_state=0)
    estimator.fit(rows.x, rows.regression)
    # What fitting on a DataFrame sets; pandas is not a dependency of this project.
    estimator.feature_names_in_ = np.array(NAMES, dtype=object)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        estimator.predict(rows.x[:1])  # the warning the compiler must keep to itself
    result = compile_model(
        estimator, name="named-forest", version="1", repository=tmp_path / "repository"
    )
    assert result.manifest.feature_names == NAMES
