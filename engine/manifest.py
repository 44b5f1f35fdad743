"""The bundle manifest: a typed, versioned schema for `models/<name>/<version>/manifest.json`.

Format `forestgate.bundle/1`. Every section is a frozen dataclass, checked field by field when
the manifest is read: a wrong or missing field is a BundleError that names the file and the
field (`library.sha256`, `verification.self_check.rows`, ...). The calibration map and the
reference distributions are parsed here too, once, so nothing downstream reads a dict.
Standard library and numpy only: the server reads manifests and never imports the compiler.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import numpy as np
import numpy.typing as npt

from forestgate.engine.calibration import Calibration
from forestgate.engine.reference import Reference
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


class _Fields:
    """One JSON object being read; every error names the file and the dotted field."""

    def __init__(self, data: object, where: str, prefix: str) -> None:
        if not isinstance(data, dict):
            raise BundleError(f"{where}: field {prefix or 'manifest'!r} must be an object")
        self.data: dict[str, Any] = data
        self.where = where
        self.prefix = prefix

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, expected: str) -> BundleError:
        got = repr(self.data[key]) if key in self.data else "missing"
        field_name = self.path(key)
        return BundleError(f"{self.where}: field {field_name!r} is {got}, expected {expected}")

    def section(self, key: str) -> _Fields:
        if not isinstance(self.data.get(key), dict):
            raise self.fail(key, "an object")
        return _Fields(self.data[key], self.where, self.path(key))


_SCALARS: dict[Any, tuple[tuple[type, ...], str]] = {
    str: ((str,), "a string"),
    int: ((int,), "an integer >= 0"),
    float: ((int, float), "a number"),
    bool: ((bool,), "true or false"),
}

Record = TypeVar("Record")


def read_record(cls: type[Record], f: _Fields) -> Record:
    """A section read field by field from the dataclass's annotations: str, int (>= 0), float,
    bool, X | None, tuple, dict or a nested dataclass. A field with a default may be absent."""
    hints = get_type_hints(cls)
    values = {}
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if spec.name not in f.data and spec.default is not dataclasses.MISSING:
            continue
        values[spec.name] = _read_value(f, spec.name, hints[spec.name])
    return cls(**values)


def _read_value(f: _Fields, key: str, kind: Any) -> Any:
    args = get_args(kind)
    if type(None) in args:  # X | None
        inner = next(arg for arg in args if arg is not type(None))
        return None if f.data.get(key) is None else _read_value(f, key, inner)
    if dataclasses.is_dataclass(kind):
        # A section with checks beyond its field types reads itself.
        reader = getattr(kind, "read", None)
        section = f.section(key)
        return reader(section) if reader else read_record(kind, section)  # type: ignore[arg-type]
    origin = get_origin(kind)
    if origin is dict:
        return dict(f.section(key).data)
    value = f.data.get(key)
    if origin is tuple:
        if not isinstance(value, list):
            raise f.fail(key, "a list")
        return tuple(value)
    kinds, expected = _SCALARS[kind]
    # bool is an int in Python, but a JSON true is never a count.
    bad_bool = isinstance(value, bool) and kind is not bool
    if not isinstance(value, kinds) or bad_bool or (isinstance(value, int) and value < 0):
        raise f.fail(key, expected)
    return float(value) if isinstance(value, int | float) and kind is float else value


@dataclass(frozen=True)
class Feature:
    """One model input column: its name, type and the range training saw or the schema allows."""

    name: str
    type: str = "float"
    min: float | None = None
    max: float | None = None

    @classmethod
    def read(cls, raw: object, where: str, index: int) -> Feature:
        f = _Fields(raw, where, f"features[{index}]")
        feature = read_record(cls, f)
        if feature.type not in FEATURE_TYPES:
            raise f.fail("type", f"one of {FEATURE_TYPES}")
        return feature


@dataclass(frozen=True)
class OutputSpec:
    """What one row of the library's output means; shape uses -1 for the batch dimension."""

    shape: tuple[int, ...]
    meaning: str
    classes: tuple[Any, ...] | None = None
    name: str = "output"
    datatype: str = "FP32"

    @classmethod
    def read(cls, f: _Fields) -> OutputSpec:
        output = read_record(cls, f)
        shape = output.shape
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise f.fail("shape", "a list of integers such as [-1] or [-1, K]")
        return output


@dataclass(frozen=True)
class LibrarySpec:
    """The native library file and how to call it (engine/abi.py)."""

    file: str
    sha256: str
    size_bytes: int
    entry: str
    outputs_per_row: int
    output_column: int | None  # the one column a binary model serves, or None for all
    input: str = "float32, C-contiguous [n, num_features]; NaN means missing"

    @classmethod
    def read(cls, f: _Fields) -> LibrarySpec:
        library = read_record(cls, f)
        if Path(library.file).name != library.file:
            raise f.fail("file", "a plain file name")
        if not re.fullmatch(r"[0-9a-f]{64}", library.sha256):
            raise f.fail("sha256", "64 lowercase hex digits")
        if library.outputs_per_row < 1:
            raise f.fail("outputs_per_row", "an integer >= 1")
        return library


@dataclass(frozen=True)
class SourceSpec:
    """The framework model the library was compiled from."""

    framework: str
    framework_version: str
    model_type: str
    objective: str | None
    file: str | None
    file_sha256: str | None


@dataclass(frozen=True)
class BuildOptions:
    """Compile settings with every "auto" resolved: what was really used for this build."""

    parallel_comp: int
    quantize: bool
    opt_level: str
    nthread: int
    toolchain: str
    annotate: bool


@dataclass(frozen=True)
class CompilerRecord:
    """How the library was built: tool versions, the options asked for and those resolved."""

    treelite: str
    tl2cgen: str
    toolchain: str
    requested: dict[str, Any]
    resolved: BuildOptions
    compile_seconds: float


@dataclass(frozen=True)
class ModelStats:
    """The tree ensemble's size, read from Treelite at compile time."""

    num_trees: int
    num_nodes: int
    max_depth: int
    num_features: int
    threshold_type: str
    leaf_output_type: str


@dataclass(frozen=True)
class SelfCheck:
    """Rows scored at compile time with the library's own outputs, re-scored before serving."""

    rows: int
    input_f32_b64: str
    output_f32_b64: str

    @classmethod
    def read(cls, f: _Fields) -> SelfCheck:
        check = read_record(cls, f)
        if check.rows < 1:
            raise f.fail("rows", "an integer >= 1")
        try:
            x, y = check._decode()
        except ValueError as exc:
            raise BundleError(
                f"{f.where}: field 'verification.self_check' is malformed ({exc})"
            ) from None
        if x.size % check.rows or y.size % check.rows or not y.size:
            raise BundleError(
                f"{f.where}: field 'verification.self_check' holds {x.size} inputs and "
                f"{y.size} outputs, not whole rows of {check.rows}"
            )
        return check

    @classmethod
    def of(cls, x: npt.NDArray[np.float32], y: npt.NDArray[np.float32]) -> SelfCheck:
        return cls(
            rows=int(x.shape[0]),
            input_f32_b64=base64.b64encode(x.tobytes()).decode("ascii"),
            output_f32_b64=base64.b64encode(y.tobytes()).decode("ascii"),
        )

    def arrays(self, num_features: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Input [rows, num_features] and expected output [rows, k]; ValueError if they do not
        hold that many values."""
        x, y = self._decode()
        if x.size != self.rows * num_features:
            raise ValueError(f"{x.size} input values, expected {self.rows} x {num_features}")
        return x.reshape(self.rows, num_features), y.reshape(self.rows, -1)

    def _decode(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        try:
            x = base64.b64decode(self.input_f32_b64, validate=True)
            y = base64.b64decode(self.output_f32_b64, validate=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not base64: {exc}") from None
        if len(x) % 4 or len(y) % 4:
            raise ValueError("not whole float32 values")
        return np.frombuffer(x, np.float32), np.frombuffer(y, np.float32)


@dataclass(frozen=True)
class VerificationResult:
    """The differential check against the source framework (compiler/verify.py)."""

    passed: bool
    rows: int
    atol: float
    rtol: float
    max_abs_diff: float
    max_rel_diff: float
    rows_over_tolerance: int
    nan_checked: bool
    inf_checked: str


@dataclass(frozen=True)
class VerificationRecord(VerificationResult):
    """The manifest's verification section: the differential check and the self-check rows."""

    self_check: SelfCheck


@dataclass(frozen=True)
class Manifest:
    """Everything the server and an auditor need to know about one compiled model version."""

    name: str
    version: str
    task: str
    features: tuple[Feature, ...]
    output: OutputSpec
    library: LibrarySpec
    source: SourceSpec
    compiler: CompilerRecord
    model_stats: ModelStats
    verification: VerificationRecord
    created_at: str
    format: str = BUNDLE_FORMAT
    calibration: Calibration | None = None
    reference: Reference | None = None
    training_metrics: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_features(self) -> int:
        return len(self.features)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "num_features": self.num_features,
            "features": [asdict(feature) for feature in self.features],
            "output": asdict(self.output),
            "library": asdict(self.library),
            "source": asdict(self.source),
            "compiler": asdict(self.compiler),
            "model_stats": asdict(self.model_stats),
            "verification": asdict(self.verification),
            "created_at": self.created_at,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "reference": None if self.reference is None else self.reference.to_dict(),
            "training_metrics": self.training_metrics,
            "extra": self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: object, where: str) -> Manifest:
        """Validate a parsed manifest; every problem names the file and the field."""
        f = _Fields(data, where, "")
        if f.data.get("format") != BUNDLE_FORMAT:
            raise f.fail("format", repr(BUNDLE_FORMAT))
        hints = get_type_hints(cls)
        values = {key: _read_value(f, key, hints[key]) for key in _SECTIONS}
        if values["task"] not in TASKS:
            raise f.fail("task", f"one of {TASKS}")
        raw_features = _read_value(f, "features", tuple[Any, ...])
        features = tuple(Feature.read(raw, where, i) for i, raw in enumerate(raw_features))
        if not features:
            raise f.fail("features", "at least one feature")
        if "num_features" in f.data and f.data["num_features"] != len(features):
            raise f.fail("num_features", f"{len(features)}, the number of features listed")
        return cls(
            **values,
            features=features,
            calibration=_calibration(f, values["task"]),
            reference=_reference(f, [feature.name for feature in features]),
            training_metrics=_training_metrics(f),
            extra=dict(f.section("extra").data) if "extra" in f.data else {},
        )


# The manifest's fields that are read by their type alone.
_SECTIONS = (
    "name", "version", "task", "output", "library", "source", "compiler", "model_stats",
    "verification", "created_at",
)  # fmt: skip


def _calibration(f: _Fields, task: str) -> Calibration | None:
    if f.data.get("calibration") is None:
        return None
    calibration = Calibration.from_dict(f.data["calibration"], f.where)
    if task != "binary":
        raise BundleError(
            f"{f.where}: field 'calibration' is set, but task is {task!r}; a calibration map "
            "applies to binary models only"
        )
    return calibration


def _reference(f: _Fields, feature_names: list[str]) -> Reference | None:
    if f.data.get("reference") is None:
        return None
    reference = Reference.from_dict(f.data["reference"], f.where)
    if list(reference.feature_names) != feature_names:
        raise BundleError(
            f"{f.where}: field 'reference.features' names {list(reference.feature_names)}, "
            f"but the model's features are {feature_names}"
        )
    return reference


def _training_metrics(f: _Fields) -> dict[str, Any] | None:
    metrics = f.data.get("training_metrics")
    if metrics is not None and not isinstance(metrics, dict):
        raise f.fail("training_metrics", "an object or null")
    return metrics


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
