"""The feature schema: names, order, types and allowed ranges of a model's input columns.

Names come from the model (XGBoost feature_names, LightGBM feature_name(), scikit-learn
feature_names_in_) or from a schema file (`forestgate compile --features FILE`, JSON or YAML):

    features:
      - {name: amount_minor, type: float, min: 0}
      - {name: is_cross_border, type: bool}
      - mcc                      # a bare name means type float, no range

When both exist they must agree exactly, in order: a silent reordering would score garbage.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from forestgate.engine.manifest import FEATURE_TYPES, Feature
from forestgate.errors import CompileError


def read_schema(path: Path) -> list[Feature]:
    """Parse a feature-schema file; every problem names the file and the entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CompileError(f"{path}: cannot read feature schema ({exc.strerror})") from None
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CompileError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'} ({exc})"
        ) from None
    if isinstance(data, dict):
        unknown = set(data) - {"features"}
        if unknown:
            raise CompileError(f"{path}: unknown top-level field(s) {sorted(unknown)}")
        data = data.get("features")
    if not isinstance(data, list) or not data:
        raise CompileError(f"{path}: expected a non-empty 'features' list")
    features = [_feature(raw, f"{path}: features[{i}]") for i, raw in enumerate(data)]
    names = [f.name for f in features]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CompileError(f"{path}: duplicate feature name(s) {duplicates}")
    return features


def _feature(raw: object, where: str) -> Feature:
    """One schema entry: a bare name, or a mapping with name, type, min, max, description."""
    entry = {"name": raw} if isinstance(raw, str) else raw
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise CompileError(f"{where}: expected a name or a mapping with a string 'name'")
    unknown = set(entry) - {"name", "type", "min", "max", "description"}
    if unknown:
        raise CompileError(f"{where}: unknown field(s) {sorted(unknown)}")
    kind = entry.get("type", "float")
    if kind not in FEATURE_TYPES:
        raise CompileError(f"{where}.type: {kind!r} is not one of {list(FEATURE_TYPES)}")
    low, high = entry.get("min"), entry.get("max")
    for key, value in (("min", low), ("max", high)):
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value)
        ):
            raise CompileError(f"{where}.{key}: expected a number, got {value!r}")
    if low is not None and high is not None and low > high:
        raise CompileError(f"{where}: min {low} is greater than max {high}")
    return Feature(entry["name"], kind, low, high)


def reconcile(
    *,
    num_features: int,
    model_names: list[str] | None,
    schema: list[Feature] | None,
    schema_path: Path | None,
    model_label: str,
) -> list[Feature]:
    """The one feature list for the manifest, or an error naming the first disagreement."""
    if schema is not None:
        if len(schema) != num_features:
            raise CompileError(
                f"{schema_path}: lists {len(schema)} features, {model_label} takes {num_features}"
            )
        if model_names is not None:
            for i, (ours, theirs) in enumerate(zip(schema, model_names, strict=True)):
                if ours.name != theirs:
                    raise CompileError(
                        f"{schema_path}: feature {i} is {ours.name!r}, "
                        f"but {model_label} calls it {theirs!r}"
                    )
        return schema
    if model_names is not None:
        if len(model_names) != num_features:
            raise CompileError(
                f"{model_label}: has {len(model_names)} feature names for {num_features} features"
            )
        return [Feature(name) for name in model_names]
    return [Feature(f"f{i}") for i in range(num_features)]
