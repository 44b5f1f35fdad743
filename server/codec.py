"""Codec: Open Inference Protocol messages <-> numpy arrays, with every shape and type check.

Names follow Triton's FIL backend (`input__0`, `output__0`), so tritonclient code written for a
Triton tree model works unchanged. Raw tensors are read with np.frombuffer: no copy, no Python
lists. Every error is an InvalidInput naming the tensor or parameter and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from forestgate.errors import InvalidInput
from forestgate.protos.inference import grpc_service_pb2 as pb

INPUT_NAME = "input__0"
OUTPUT_NAME = "output__0"
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


def decode_infer_request(
    request: pb.ModelInferRequest, *, num_features: int, max_rows: int
) -> DecodedRequest:
    """Check a ModelInferRequest against the model and return its [n, F] float32 rows."""
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
    for wanted in request.outputs:
        if wanted.name != OUTPUT_NAME:
            raise InvalidInput(f"outputs: unknown output {wanted.name!r}, expected {OUTPUT_NAME!r}")
    return DecodedRequest(rows=rows, timeout_us=timeout_us)


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
    request: pb.ModelInferRequest, *, model_name: str, version: str, scores: npt.NDArray[np.float32]
) -> pb.ModelInferResponse:
    """Scores [n] or [n, K] float32 -> a response with one raw FP32 output."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=version, id=request.id)
    output = response.outputs.add()
    output.name = OUTPUT_NAME
    output.datatype = DATATYPE
    output.shape.extend(scores.shape)
    response.raw_output_contents.append(scores.astype(_F32, copy=False).tobytes())
    return response
