"""Codec: Open Inference Protocol messages <-> numpy arrays, with every shape and type check.

Names follow Triton's FIL backend (`input__0`, `output__0`), so tritonclient code written for a
Triton tree model works unchanged. A binary model with a calibration map has a second output,
`probability`, the calibrated probability; as in Triton, a request that names no outputs gets
them all, and one that names some gets just those. Raw tensors are read with np.frombuffer: no
copy, no Python lists. Every error is an InvalidInput naming the tensor or parameter and what
was expected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from forestgate.errors import InvalidInput
from forestgate.protos.inference import grpc_service_pb2 as pb

INPUT_NAME = "input__0"
OUTPUT_NAME = "output__0"
PROBABILITY_NAME = "probability"
RAW_OUTPUTS = (OUTPUT_NAME,)
CALIBRATED_OUTPUTS = (OUTPUT_NAME, PROBABILITY_NAME)
DATATYPE = "FP32"
_F32 = np.dtype("<f4")
_ALLOWED_PARAMETERS = {
    "timeout": "int64_param",  # microseconds, Triton's schedule-policy extension
    "priority": "uint64_param",  # accepted for client compatibility; one queue per model
    "binary_data_output": "bool_param",  # outputs are always raw
}


@dataclass(frozen=True)
class DecodedRequest:
    rows: npt.NDArray[np.float32]
    timeout_us: int | None
    outputs: tuple[str, ...] = RAW_OUTPUTS  # what to return, in order


def decode_infer_request(
    request: pb.ModelInferRequest,
    *,
    num_features: int,
    max_rows: int,
    outputs: tuple[str, ...] = RAW_OUTPUTS,
) -> DecodedRequest:
    """Check a ModelInferRequest against the model (its `outputs` are the ones it has) and
    return its [n, F] float32 rows and the outputs to compute."""
    timeout_us = _check_parameters(request)
    if len(request.inputs) != 1:
        raise InvalidInput(
            f"inputs: expected exactly 1 input tensor ({INPUT_NAME!r}), got {len(request.inputs)}"
        )
    tensor = request.inputs[0]
    label = f"input {tensor.name!r}"
    if tensor.datatype != DATATYPE:
        raise InvalidInput(f"{label}: datatype {tensor.datatype!r}, expected {DATATYPE!r}")
    shape = list(tensor.shape)
    if len(shape) != 2 or shape[1] != num_features:
        raise InvalidInput(f"{label}: shape {shape}, expected [n, {num_features}]")
    n = shape[0]
    if n < 1:
        raise InvalidInput(f"{label}: shape {shape} has no rows; expected n >= 1")
    if n > max_rows:
        raise InvalidInput(f"{label}: {n} rows, more than the limit of {max_rows} per request")
    count = n * num_features
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise InvalidInput(
                f"raw_input_contents: expected 1 entry (one per input), "
                f"got {len(request.raw_input_contents)}"
            )
        if tensor.HasField("contents"):
            raise InvalidInput(f"{label}: contents must be empty when raw_input_contents is used")
        raw = request.raw_input_contents[0]
        if len(raw) != count * 4:
            raise InvalidInput(
                f"{label}: raw_input_contents has {len(raw)} bytes, expected {count * 4} "
                f"for shape {shape} FP32"
            )
        rows = np.frombuffer(raw, dtype=_F32).reshape(n, num_features)
    else:
        values = tensor.contents.fp32_contents
        if len(values) != count:
            raise InvalidInput(
                f"{label}: contents.fp32_contents has {len(values)} values, expected {count} "
                f"for shape {shape}"
            )
        rows = np.asarray(values, dtype=np.float32).reshape(n, num_features)
    return DecodedRequest(rows=rows, timeout_us=timeout_us, outputs=_wanted(request, outputs))


def _wanted(request: pb.ModelInferRequest, available: tuple[str, ...]) -> tuple[str, ...]:
    if not request.outputs:
        return available
    wanted: list[str] = []
    for output in request.outputs:
        if output.name not in available:
            raise InvalidInput(
                f"outputs: unknown output {output.name!r}, expected "
                + " or ".join(repr(name) for name in available)
            )
        if output.name not in wanted:
            wanted.append(output.name)
    return tuple(wanted)


def _check_parameters(request: pb.ModelInferRequest) -> int | None:
    timeout_us = None
    for key, value in request.parameters.items():
        kind = value.WhichOneof("parameter_choice")
        if kind is None:
            raise InvalidInput(f"parameters[{key!r}]: no value set")
        expected = _ALLOWED_PARAMETERS.get(key)
        if expected is not None and kind != expected:
            raise InvalidInput(f"parameters[{key!r}]: expected {expected}, got {kind}")
        if key == "timeout":
            timeout_us = int(value.int64_param)
            if timeout_us <= 0:
                raise InvalidInput(f"parameters['timeout']: {timeout_us} us, expected > 0")
    return timeout_us


def encode_infer_response(
    request: pb.ModelInferRequest,
    *,
    model_name: str,
    version: str,
    scores: npt.NDArray[np.float32],
    probability: npt.NDArray[np.float32] | None = None,
    outputs: tuple[str, ...] = RAW_OUTPUTS,
) -> pb.ModelInferResponse:
    """Scores [n] or [n, K] float32 (and the calibrated probability [n]) -> a response with
    one raw FP32 output per name in `outputs`, in that order."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=version, id=request.id)
    for name in outputs:
        tensor = scores if name == OUTPUT_NAME else probability
        if tensor is None:
            raise ValueError(f"encode_infer_response: no array given for output {name!r}")
        output = response.outputs.add()
        output.name = name
        output.datatype = DATATYPE
        output.shape.extend(tensor.shape)
        response.raw_output_contents.append(tensor.astype(_F32, copy=False).tobytes())
    return response
