"""Codec: Open Inference Protocol messages <-> the scoring core's requests, results and tensors.

It knows the wire format and nothing of models: every OIP datatype, in raw bytes
(`raw_input_contents` / `raw_output_contents`, little-endian; BYTES elements each prefixed by
a 4-byte little-endian length) or in the typed `contents` fields, decoded into numpy arrays of
the tensor's shape. Raw tensors are read with np.frombuffer: no copy, no Python lists. Every
error is an InvalidInput naming the tensor or parameter and what was expected. Whether a tensor
suits the model is the scoring core's question, not this module's.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from forestgate.errors import InvalidInput
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.server.scoring import InferRequest, InferResult, Tensor


@dataclass(frozen=True)
class Datatype:
    dtype: np.dtype[Any]
    contents: str | None  # the typed field of InferTensorContents, None when raw only


DATATYPES: dict[str, Datatype] = {
    "BOOL": Datatype(np.dtype("?"), "bool_contents"),
    "UINT8": Datatype(np.dtype("<u1"), "uint_contents"),
    "UINT16": Datatype(np.dtype("<u2"), "uint_contents"),
    "UINT32": Datatype(np.dtype("<u4"), "uint_contents"),
    "UINT64": Datatype(np.dtype("<u8"), "uint64_contents"),
    "INT8": Datatype(np.dtype("<i1"), "int_contents"),
    "INT16": Datatype(np.dtype("<i2"), "int_contents"),
    "INT32": Datatype(np.dtype("<i4"), "int_contents"),
    "INT64": Datatype(np.dtype("<i8"), "int64_contents"),
    "FP16": Datatype(np.dtype("<f2"), None),
    "FP32": Datatype(np.dtype("<f4"), "fp32_contents"),
    "FP64": Datatype(np.dtype("<f8"), "fp64_contents"),
    "BYTES": Datatype(np.dtype(object), "bytes_contents"),
}
_DATATYPE_OF = {spec.dtype: name for name, spec in DATATYPES.items() if name != "BYTES"}
_LENGTH = struct.Struct("<I")
_ALLOWED_PARAMETERS = {
    "timeout": "int64_param",  # microseconds, Triton's schedule-policy extension
    "priority": "uint64_param",  # accepted for client compatibility; one queue per model
    "binary_data_output": "bool_param",  # outputs are always raw
}

TensorMessage = pb.ModelInferRequest.InferInputTensor | pb.ModelInferResponse.InferOutputTensor


def datatype_of(array: npt.NDArray[Any]) -> str:
    """The OIP datatype name for a numpy array (object arrays are BYTES)."""
    if array.dtype == object:
        return "BYTES"
    name = _DATATYPE_OF.get(array.dtype.newbyteorder("<"))
    if name is None:
        raise InvalidInput(f"dtype {array.dtype} has no Open Inference Protocol datatype")
    return name


def decode_tensor(message: TensorMessage, raw: bytes | None, label: str) -> npt.NDArray[Any]:
    """One tensor's data as a numpy array of its shape, from `raw` bytes or its typed contents."""
    spec = DATATYPES.get(message.datatype)
    if spec is None:
        raise InvalidInput(
            f"{label}: datatype {message.datatype!r} is not one of {', '.join(DATATYPES)}"
        )
    shape = tuple(message.shape)
    if any(dim < 0 for dim in shape):
        raise InvalidInput(f"{label}: shape {list(shape)} has a negative dimension")
    count = math.prod(shape)
    if raw is not None:
        flat = _from_raw(raw, spec, count, label, shape)
    else:
        flat = _from_contents(message, spec, count, label, shape)
    return flat.reshape(shape)


def _from_raw(
    raw: bytes, spec: Datatype, count: int, label: str, shape: tuple[int, ...]
) -> npt.NDArray[Any]:
    if spec.dtype == object:
        return _unpack_bytes(raw, count, label)
    expected = count * spec.dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"{label}: raw contents have {len(raw)} bytes, expected {expected} for shape "
            f"{list(shape)} {_name_of(spec)}"
        )
    return np.frombuffer(raw, dtype=spec.dtype)


def _from_contents(
    message: TensorMessage, spec: Datatype, count: int, label: str, shape: tuple[int, ...]
) -> npt.NDArray[Any]:
    if spec.contents is None:
        raise InvalidInput(
            f"{label}: datatype {_name_of(spec)} has no typed contents field; send it raw"
        )
    values = getattr(message.contents, spec.contents)
    if len(values) != count:
        raise InvalidInput(
            f"{label}: contents.{spec.contents} has {len(values)} values, expected {count} for "
            f"shape {list(shape)}"
        )
    if spec.dtype == object:
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array
    if spec.dtype.kind not in "iu":
        return np.array(values, dtype=spec.dtype)
    # The typed fields are 32 or 64 bits wide: INT8 values arrive in int32s and must fit.
    wide = np.array(values, dtype=np.int64 if spec.dtype.kind == "i" else np.uint64)
    bounds = np.iinfo(spec.dtype)
    if wide.size and (wide.min() < bounds.min or wide.max() > bounds.max):
        raise InvalidInput(
            f"{label}: contents.{spec.contents} has a value outside {_name_of(spec)} "
            f"[{bounds.min}, {bounds.max}]"
        )
    return wide.astype(spec.dtype)


def _unpack_bytes(raw: bytes, count: int, label: str) -> npt.NDArray[Any]:
    array = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise InvalidInput(f"{label}: raw BYTES contents end before element {i} of {count}")
        (size,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidInput(f"{label}: raw BYTES element {i} runs past the end of the data")
        array[i] = raw[offset : offset + size]
        offset += size
    if offset != len(raw):
        raise InvalidInput(f"{label}: raw BYTES contents have {len(raw) - offset} bytes left over")
    return array


def encode_raw(array: npt.NDArray[Any], datatype: str) -> bytes:
    """A tensor's raw bytes: little-endian values, or length-prefixed BYTES elements."""
    if datatype == "BYTES":
        parts = []
        for element in array.reshape(-1):
            data = element if isinstance(element, bytes) else str(element).encode()
            parts += [_LENGTH.pack(len(data)), data]
        return b"".join(parts)
    return array.astype(DATATYPES[datatype].dtype, copy=False).tobytes()


def encode_contents(array: npt.NDArray[Any], message: TensorMessage) -> None:
    """Fill a tensor message's typed contents field (the non-raw form)."""
    spec = DATATYPES[message.datatype]
    if spec.contents is None:
        raise InvalidInput(f"datatype {message.datatype} has no typed contents field")
    getattr(message.contents, spec.contents).extend(array.reshape(-1).tolist())


def _name_of(spec: Datatype) -> str:
    return next(name for name, known in DATATYPES.items() if known is spec)


# --- ModelInfer ---------------------------------------------------------------------------------


def decode_infer_request(request: pb.ModelInferRequest) -> InferRequest:
    """The request's structure checked and its tensors decoded; nothing model-specific."""
    timeout_us = _check_parameters(request)
    raws: Sequence[bytes | None]
    if request.raw_input_contents:
        if len(request.raw_input_contents) != len(request.inputs):
            raise InvalidInput(
                f"raw_input_contents: expected {len(request.inputs)} entries (one per input), "
                f"got {len(request.raw_input_contents)}"
            )
        for tensor in request.inputs:
            if tensor.HasField("contents"):
                raise InvalidInput(
                    f"input {tensor.name!r}: contents must be empty when raw_input_contents is used"
                )
        raws = request.raw_input_contents
    else:
        raws = [None] * len(request.inputs)
    inputs = tuple(
        Tensor(t.name, t.datatype, decode_tensor(t, raw, f"input {t.name!r}"))
        for t, raw in zip(request.inputs, raws, strict=True)
    )
    return InferRequest(
        model=request.model_name,
        version=request.model_version,
        inputs=inputs,
        outputs=tuple(output.name for output in request.outputs),
        timeout_us=timeout_us,
        id=request.id,
    )


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


def encode_infer_response(result: InferResult) -> pb.ModelInferResponse:
    """Every output in raw_output_contents, as tritonclient's as_numpy() reads them."""
    response = pb.ModelInferResponse(
        model_name=result.model, model_version=result.version, id=result.id
    )
    for tensor in result.outputs:
        output = response.outputs.add()
        output.name = tensor.name
        output.datatype = tensor.datatype
        output.shape.extend(tensor.data.shape)
        response.raw_output_contents.append(encode_raw(tensor.data, tensor.datatype))
    return response
