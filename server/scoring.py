"""The scoring core: decoded tensors and a model name in, scores out, knowing nothing of gRPC.

Every transport adapter (the Open Inference Protocol servicer today, the decision API next)
decodes its messages into an `InferRequest`, awaits `ScoringCore.infer`, and encodes the
`InferResult`. The core does everything in between exactly once: readiness, model lookup,
checking the input against the model, the output policy, the batcher, calibration. Its errors
are the project's own (forestgate.errors); the transport maps them to status codes.

Tensor names follow Triton's FIL backend, so tritonclient code written for a Triton tree model
works unchanged: one FP32 input `input__0` [n, F] (NaN means missing) and the output
`output__0`, [n] or [n, K]. A binary model with a calibration map has a second output,
`probability`; as in Triton, a request that names no outputs gets them all, and one that names
some gets just those, in its order. Asking for `output__0` alone never computes the map.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from forestgate.engine.model import CompiledModel
from forestgate.errors import InvalidInput, Unavailable
from forestgate.server.repository import LoadedVersion, ModelRepository, version_key

INPUT_NAME = "input__0"
OUTPUT_NAME = "output__0"
PROBABILITY_NAME = "probability"
DATATYPE = "FP32"


@dataclass(frozen=True, slots=True)
class Tensor:
    """A decoded tensor: its name, OIP datatype name and data (shape included)."""

    name: str
    datatype: str
    data: npt.NDArray[np.generic]


@dataclass(frozen=True, slots=True)
class InferRequest:
    """One inference call as the core sees it, whatever the transport."""

    model: str
    inputs: tuple[Tensor, ...]
    version: str = ""  # empty: the latest loaded version
    outputs: tuple[str, ...] = ()  # names asked for, in order; empty: every output
    timeout_us: int | None = None  # a per-request budget on top of the transport's deadline
    id: str = ""


@dataclass(frozen=True, slots=True)
class InferResult:
    model: str
    version: str
    outputs: tuple[Tensor, ...]
    id: str = ""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 for the batch dimension
    parameters: dict[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """What ModelMetadata (and Triton's ModelConfig) report about one loaded version."""

    name: str
    version: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parameters: dict[str, str]
    max_batch_rows: int = 0  # the batching in force, from the version's batcher
    max_queue_delay_us: int = 0


class Readiness:
    """Whether the server takes inference calls: not while models load, not while draining."""

    def __init__(self) -> None:
        self.ready = False
        self.draining = False

    @property
    def serving(self) -> bool:
        return self.ready and not self.draining

    def check(self) -> None:
        if self.draining:
            raise Unavailable("server is draining; retry on another instance")
        if not self.ready:
            raise Unavailable("server is starting: models are still loading")


PLATFORM = "forestgate_tl2cgen"


class ScoringCore:
    """Validates a request against its model once, scores it through the model's batcher, and
    applies the output policy."""

    def __init__(
        self, repository: ModelRepository, readiness: Readiness, *, max_request_rows: int
    ) -> None:
        self.repository = repository
        self.readiness = readiness
        self.max_request_rows = max_request_rows

    async def infer(
        self, request: InferRequest, deadline_ns: int | None = None, trace: object = None
    ) -> InferResult:
        """Score `request`; `deadline_ns` (monotonic) is the transport's deadline, if any, and
        `trace` the call's trace record, handed to the batcher's observer with the batch."""
        self.readiness.check()
        loaded = self.repository.get(request.model, request.version)
        model = loaded.model
        rows = self._rows(request, model)
        wanted = _wanted(request.outputs, output_names(model))
        if request.timeout_us is not None:
            budget = time.monotonic_ns() + request.timeout_us * 1000
            deadline_ns = budget if deadline_ns is None else min(deadline_ns, budget)
        scores = await loaded.batcher.submit(rows, deadline_ns, trace)
        outputs = tuple(
            Tensor(name, DATATYPE, scores if name == OUTPUT_NAME else model.calibrate(scores))
            for name in wanted
        )
        return InferResult(model.name, model.version, outputs, request.id)

    async def probabilities(
        self,
        name: str,
        rows: npt.NDArray[np.float32],
        deadline_ns: int | None = None,
        trace: object = None,
    ) -> tuple[CompiledModel, npt.NDArray[np.float32]]:
        """Calibrated scores of rows the server built itself (the decision API's features), from
        the latest version of `name`: the same queue and engine as ModelInfer, without a codec."""
        self.readiness.check()
        loaded = self.repository.get(name)
        model = loaded.model
        if rows.ndim != 2 or rows.shape[1] != model.num_features:
            raise Unavailable(
                f"model {name}/{model.version} takes {model.num_features} features, "
                f"the decision API built {rows.shape[-1]}"
            )
        scores = await loaded.batcher.submit(rows, deadline_ns, trace)
        return model, model.calibrate(scores) if model.calibration is not None else scores

    def _rows(self, request: InferRequest, model: CompiledModel) -> npt.NDArray[np.float32]:
        """The checked rows; a refusal is counted in the version's statistics, as in Triton."""
        try:
            return self._checked_rows(request, model)
        except InvalidInput:
            batcher = self.repository.get(model.name, model.version).batcher
            batcher.report_refusal("invalid")
            raise

    def _checked_rows(self, request: InferRequest, model: CompiledModel) -> npt.NDArray[np.float32]:
        """The one check of the input: one FP32 tensor of shape [n, F], 1 <= n <= the limit."""
        if len(request.inputs) != 1:
            raise InvalidInput(
                f"inputs: expected exactly 1 input tensor ({INPUT_NAME!r}), "
                f"got {len(request.inputs)}"
            )
        tensor = request.inputs[0]
        label = f"input {tensor.name!r}"
        if tensor.datatype != DATATYPE:
            raise InvalidInput(f"{label}: datatype {tensor.datatype!r}, expected {DATATYPE!r}")
        shape = list(tensor.data.shape)
        if len(shape) != 2 or shape[1] != model.num_features:
            raise InvalidInput(f"{label}: shape {shape}, expected [n, {model.num_features}]")
        if shape[0] < 1:
            raise InvalidInput(f"{label}: shape {shape} has no rows; expected n >= 1")
        if shape[0] > self.max_request_rows:
            raise InvalidInput(
                f"{label}: {shape[0]} rows, more than the limit of {self.max_request_rows} per "
                "request (max_request_rows)"
            )
        rows: npt.NDArray[np.float32] = tensor.data  # type: ignore[assignment]
        return rows

    def model_info(self, name: str, version: str = "") -> ModelInfo:
        loaded = self.repository.get(name, version)
        return describe(loaded, tuple(self.repository.versions(name)))

    def loaded_versions(self, name: str = "", version: str = "") -> list[LoadedVersion]:
        """The versions a statistics call names, by Triton's rule: every loaded version when
        `name` is empty, every version of `name` when `version` is; NotFound for unknown ones."""
        if not name:
            loaded = self.repository.loaded()
            return sorted(loaded, key=lambda v: (v.model.name, version_key(v.model.version)))
        if not version:
            return [self.repository.get(name, each) for each in self.repository.versions(name)]
        return [self.repository.get(name, version)]


def output_names(model: CompiledModel) -> tuple[str, ...]:
    return (OUTPUT_NAME,) if model.calibration is None else (OUTPUT_NAME, PROBABILITY_NAME)


def _wanted(asked: tuple[str, ...], available: tuple[str, ...]) -> tuple[str, ...]:
    if not asked:
        return available
    wanted: list[str] = []
    for name in asked:
        if name not in available:
            raise InvalidInput(
                f"outputs: unknown output {name!r}, expected "
                + " or ".join(repr(known) for known in available)
            )
        if name not in wanted:
            wanted.append(name)
    return tuple(wanted)


def describe(loaded: LoadedVersion, versions: tuple[str, ...]) -> ModelInfo:
    """The model's tensors and provenance, as ModelMetadata reports them."""
    model = loaded.model
    manifest = model.manifest
    batch_shape = tuple(model.output_shape)
    input_spec = TensorSpec(
        INPUT_NAME, DATATYPE, (-1, model.num_features),
        {"feature_names": json.dumps(manifest.feature_names), "num_features": model.num_features},
    )  # fmt: skip
    output_parameters: dict[str, str | int] = {"meaning": manifest.output.meaning}
    if manifest.output.classes is not None:
        output_parameters["classes"] = json.dumps(manifest.output.classes)
    outputs = [TensorSpec(OUTPUT_NAME, DATATYPE, batch_shape, output_parameters)]
    if model.calibration is not None:
        meaning = (
            f"calibrated probability of the positive class ({model.calibration.method} map "
            f"applied to {OUTPUT_NAME})"
        )
        parameters: dict[str, str | int] = {
            "meaning": meaning,
            "calibration": model.calibration.describe(),
        }
        outputs.append(TensorSpec(PROBABILITY_NAME, DATATYPE, batch_shape, parameters))
    source = manifest.source
    return ModelInfo(
        name=model.name,
        version=model.version,
        versions=versions,
        platform=PLATFORM,
        inputs=(input_spec,),
        outputs=tuple(outputs),
        parameters={
            "version": model.version,
            "task": manifest.task,
            "framework": f"{source.framework} {source.framework_version}",
        },
        max_batch_rows=loaded.batcher.max_batch_rows,
        max_queue_delay_us=loaded.batcher.max_queue_delay_us,
    )
