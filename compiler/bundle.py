"""The model bundle contract: `models/<name>/<version>/` with a native library and manifest.json.

This module reads, writes and checks manifests with the standard library and numpy only (the
calibration map and reference distributions are checked by their own modules), because the
server loads bundles and must not import the compiler's training dependencies.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forestgate.compiler.calibration import Calibration
from forestgate.compiler.reference import Reference
from forestgate.errors import BundleError

MANIFEST_FILE = "manifest.json"
BUNDLE_FORMAT = "forestgate.bundle/1"
TASKS = ("binary", "multiclass", "regression")
FEATURE_TYPES = ("float", "int", "bool", "category")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_identifier(value: str, what: str) -> str:
    """Model names and versions become directory names: keep them to a safe alphabet."""
    if not _NAME.match(value) or value in {".", ".."}:
        raise BundleError(
            f"{what} {value!r} must be 1-128 characters of letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Feature:
    """One model input column: its name, type and the range training saw or the schema allows."""

    name: str
    type: str = "float"
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Manifest:
    """Everything the server and an auditor need to know about one compiled model version."""

    name: str
    version: str
    task: str
    features: tuple[Feature, ...]
    output: dict[str, Any]
    library: dict[str, Any]
    source: dict[str, Any]
    compiler: dict[str, Any]
    model_stats: dict[str, Any]
    verification: dict[str, Any]
    created_at: str
    format: str = BUNDLE_FORMAT
    calibration: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    training_metrics: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_features(self) -> int:
        return len(self.features)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_json(self) -> str:
        data = asdict(self)
        data["num_features"] = self.num_features
        return json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> Manifest:
        """Validate a parsed manifest; every problem names the file and the field."""
        if not isinstance(data, dict):
            raise BundleError(f"{where}: manifest must be a JSON object")
        if data.get("format") != BUNDLE_FORMAT:
            raise BundleError(
                f"{where}: field 'format' is {data.get('format')!r}, expected {BUNDLE_FORMAT!r}"
            )
        required = {
            "name": str, "version": str, "task": str, "features": list, "output": dict,
            "library": dict, "source": dict, "compiler": dict, "model_stats": dict,
            "verification": dict, "created_at": str,
        }  # fmt: skip
        for key, kind in required.items():
            if not isinstance(data.get(key), kind):
                raise BundleError(f"{where}: field {key!r} is missing or not a {kind.__name__}")
        if data["task"] not in TASKS:
            raise BundleError(f"{where}: field 'task' is {data['task']!r}, expected one of {TASKS}")
        features = []
        for i, raw in enumerate(data["features"]):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise BundleError(f"{where}: features[{i}] needs a string 'name'")
            if raw.get("type", "float") not in FEATURE_TYPES:
                raise BundleError(f"{where}: features[{i}].type must be one of {FEATURE_TYPES}")
            features.append(
                Feature(raw["name"], raw.get("type", "float"), raw.get("min"), raw.get("max"))
            )
        if not features:
            raise BundleError(f"{where}: field 'features' is empty")
        if "num_features" in data and data["num_features"] != len(features):
            raise BundleError(
                f"{where}: field 'num_features' is {data['num_features']}, "
                f"but {len(features)} features are listed"
            )
        lib = data["library"]
        for key in ("file", "sha256", "entry", "outputs_per_row"):
            if key not in lib:
                raise BundleError(f"{where}: field 'library.{key}' is missing")
        if Path(lib["file"]).name != lib["file"]:
            raise BundleError(f"{where}: field 'library.file' must be a plain file name")
        if not isinstance(data["output"].get("shape"), list):
            raise BundleError(f"{where}: field 'output.shape' is missing or not a list")
        _check_model_card(data, [f.name for f in features], where)
        known = {f for f in cls.__dataclass_fields__ if f != "features"}
        kwargs = {k: v for k, v in data.items() if k in known}
        return cls(features=tuple(features), **kwargs)


def _check_model_card(data: dict[str, Any], feature_names: list[str], where: str) -> None:
    """The optional calibration map, reference distributions and training metrics: absent or
    null in older bundles, refused when malformed."""
    if data.get("calibration") is not None:
        Calibration.from_dict(data["calibration"], where)
        if data["task"] != "binary":
            raise BundleError(
                f"{where}: field 'calibration' is set, but task is {data['task']!r}; a "
                "calibration map applies to binary models only"
            )
    if data.get("reference") is not None:
        reference = Reference.from_dict(data["reference"], where)
        if list(reference.feature_names) != feature_names:
            raise BundleError(
                f"{where}: field 'reference.features' names {list(reference.feature_names)}, "
                f"but the model's features are {feature_names}"
            )
    metrics = data.get("training_metrics")
    if metrics is not None and not isinstance(metrics, dict):
        raise BundleError(f"{where}: field 'training_metrics' must be an object or null")


def read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"{path}: no manifest (not a ForestGate bundle)") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read manifest ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: manifest is not valid JSON ({exc})") from None
    return Manifest.from_dict(data, str(path))
