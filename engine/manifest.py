"""The bundle manifest: a typed, versioned schema for `models/<name>/<version>/manifest.json`.

Format `forestgate.bundle/1`. Every section is a frozen dataclass, checked field by field when
the manifest is read: a wrong or missing field is a BundleError that names the file and the
field (`library.sha256`, `verification.self_check.rows`, ...). The calibration map and the
reference distributions are parsed here too, once, so nothing downstream reads a dict.
Standard library and numpy only: the server reads manifests and never imports the compiler.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
    """Typed reads from one JSON object; every error names the file and the dotted field."""

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

    def get(self, key: str, kinds: tuple[type, ...], expected: str, *, optional: bool) -> Any:
        value = self.data.get(key)
        if value is None and optional:
            return None
        # bool is an int in Python; a JSON true is never a count.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self.fail(key, expected)
        return value

    def text(self, key: str) -> str:
        value: str = self.get(key, (str,), "a string", optional=False)
        return value

    def opt_text(self, key: str) -> str | None:
        value: str | None = self.get(key, (str,), "a string or null", optional=True)
        return value

    def integer(self, key: str, minimum: int = 0) -> int:
        value: int = self.get(key, (int,), f"an integer >= {minimum}", optional=False)
        if value < minimum:
            raise self.fail(key, f"an integer >= {minimum}")
        return value

    def opt_integer(self, key: str) -> int | None:
        value: int | None = self.get(key, (int,), "an integer or null", optional=True)
        return value

    def number(self, key: str) -> float:
        return float(self.get(key, (int, float), "a number", optional=False))

    def opt_number(self, key: str) -> float | None:
        value = self.get(key, (int, float), "a number or null", optional=True)
        return None if value is None else float(value)

    def flag(self, key: str) -> bool:
        value: bool = self.get(key, (bool,), "true or false", optional=False)
        return value

    def section(self, key: str) -> _Fields:
        return _Fields(
            self.get(key, (dict,), "an object", optional=False), self.where, self.path(key)
        )

    def items(self, key: str) -> list[Any]:
        value: list[Any] = self.get(key, (list,), "a list", optional=False)
        return value


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
        kind = f.opt_text("type") or "float"
        if kind not in FEATURE_TYPES:
            raise f.fail("type", f"one of {FEATURE_TYPES}")
        return cls(f.text("name"), kind, f.opt_number("min"), f.opt_number("max"))


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
        shape = f.items("shape")
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise f.fail("shape", "a list of integers such as [-1] or [-1, K]")
        classes = f.get("classes", (list,), "a list or null", optional=True)
        return cls(
            shape=tuple(shape),
            meaning=f.opt_text("meaning") or "",
            classes=None if classes is None else tuple(classes),
            name=f.opt_text("name") or "output",
            datatype=f.opt_text("datatype") or "FP32",
        )


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
        file = f.text("file")
        if Path(file).name != file:
            raise f.fail("file", "a plain file name")
        digest = f.text("sha256")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise f.fail("sha256", "64 lowercase hex digits")
        return cls(
            file=file,
            sha256=digest,
            size_bytes=f.integer("size_bytes"),
            entry=f.text("entry"),
            outputs_per_row=f.integer("outputs_per_row", 1),
            output_column=f.opt_integer("output_column"),
            input=f.opt_text("input") or cls.input,
        )


@dataclass(frozen=True)
class SourceSpec:
    """The framework model the library was compiled from."""

    framework: str
    framework_version: str
    model_type: str
    objective: str | None
    file: str | None
    file_sha256: str | None

    @classmethod
    def read(cls, f: _Fields) -> SourceSpec:
        return cls(
            framework=f.text("framework"),
            framework_version=f.text("framework_version"),
            model_type=f.text("model_type"),
            objective=f.opt_text("objective"),
            file=f.opt_text("file"),
            file_sha256=f.opt_text("file_sha256"),
        )


@dataclass(frozen=True)
class BuildOptions:
    """Compile settings with every "auto" resolved: what was really used for this build."""

    parallel_comp: int
    quantize: bool
    opt_level: str
    nthread: int
    toolchain: str
    annotate: bool

    @classmethod
    def read(cls, f: _Fields) -> BuildOptions:
        return cls(
            parallel_comp=f.integer("parallel_comp", 1),
            quantize=f.flag("quantize"),
            opt_level=f.text("opt_level"),
            nthread=f.integer("nthread", 1),
            toolchain=f.text("toolchain"),
            annotate=f.flag("annotate"),
        )


@dataclass(frozen=True)
class CompilerRecord:
    """How the library was built: tool versions, the options asked for and those resolved."""

    treelite: str
    tl2cgen: str
    toolchain: str
    requested: dict[str, Any]
    resolved: BuildOptions
    compile_seconds: float

    @classmethod
    def read(cls, f: _Fields) -> CompilerRecord:
        return cls(
            treelite=f.text("treelite"),
            tl2cgen=f.text("tl2cgen"),
            toolchain=f.text("toolchain"),
            requested=dict(f.section("requested").data),
            resolved=BuildOptions.read(f.section("resolved")),
            compile_seconds=f.number("compile_seconds"),
        )


@dataclass(frozen=True)
class ModelStats:
    """The tree ensemble's size, read from Treelite at compile time."""

    num_trees: int
    num_nodes: int
    max_depth: int
    num_features: int
    threshold_type: str
    leaf_output_type: str

    @classmethod
    def read(cls, f: _Fields) -> ModelStats:
        return cls(
            num_trees=f.integer("num_trees"),
            num_nodes=f.integer("num_nodes"),
            max_depth=f.integer("max_depth"),
            num_features=f.integer("num_features"),
            threshold_type=f.text("threshold_type"),
            leaf_output_type=f.text("leaf_output_type"),
        )


@dataclass(frozen=True)
class SelfCheck:
    """Rows scored at compile time with the library's own outputs, re-scored before serving."""

    rows: int
    input_f32_b64: str
    output_f32_b64: str

    @classmethod
    def read(cls, f: _Fields) -> SelfCheck:
        check = cls(f.integer("rows", 1), f.text("input_f32_b64"), f.text("output_f32_b64"))
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
class VerificationRecord:
    """The differential check against the source framework, and the self-check rows."""

    passed: bool
    rows: int
    atol: float
    rtol: float
    max_abs_diff: float
    max_rel_diff: float
    rows_over_tolerance: int
    nan_checked: bool
    inf_checked: str
    self_check: SelfCheck

    @classmethod
    def read(cls, f: _Fields) -> VerificationRecord:
        return cls(
            passed=f.flag("passed"),
            rows=f.integer("rows"),
            atol=f.number("atol"),
            rtol=f.number("rtol"),
            max_abs_diff=f.number("max_abs_diff"),
            max_rel_diff=f.number("max_rel_diff"),
            rows_over_tolerance=f.integer("rows_over_tolerance"),
            nan_checked=f.flag("nan_checked"),
            inf_checked=f.text("inf_checked"),
            self_check=SelfCheck.read(f.section("self_check")),
        )


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
        task = f.text("task")
        if task not in TASKS:
            raise f.fail("task", f"one of {TASKS}")
        features = tuple(Feature.read(raw, where, i) for i, raw in enumerate(f.items("features")))
        if not features:
            raise f.fail("features", "at least one feature")
        if "num_features" in f.data and f.data["num_features"] != len(features):
            raise f.fail("num_features", f"{len(features)}, the number of features listed")
        names = [feature.name for feature in features]
        return cls(
            name=f.text("name"),
            version=f.text("version"),
            task=task,
            features=features,
            output=OutputSpec.read(f.section("output")),
            library=LibrarySpec.read(f.section("library")),
            source=SourceSpec.read(f.section("source")),
            compiler=CompilerRecord.read(f.section("compiler")),
            model_stats=ModelStats.read(f.section("model_stats")),
            verification=VerificationRecord.read(f.section("verification")),
            created_at=f.text("created_at"),
            calibration=_calibration(f, task),
            reference=_reference(f, names),
            training_metrics=_training_metrics(f),
            extra=dict(f.section("extra").data) if "extra" in f.data else {},
        )


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
