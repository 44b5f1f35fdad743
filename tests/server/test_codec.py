"""The OIP codec: every datatype round-trips, raw and typed contents give the same tensor, and
malformed tensors are refused naming what was expected."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from forestgate.errors import InvalidInput
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.server import codec
from forestgate.server.scoring import InferResult, Tensor

TYPED = [name for name, spec in codec.DATATYPES.items() if spec.contents is not None]
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)


@st.composite
def tensors(draw: st.DrawFn, datatype: str) -> np.ndarray:
    shape = draw(shapes)
    if datatype == "BYTES":
        values = draw(st.lists(st.binary(max_size=12), min_size=math.prod(shape),
                               max_size=math.prod(shape)))  # fmt: skip
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    dtype = codec.DATATYPES[datatype].dtype
    return draw(hnp.arrays(dtype, shape))


def request_with(array: np.ndarray, datatype: str, *, raw: bool) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m")
    tensor = message.inputs.add(name="x", datatype=datatype, shape=list(array.shape))
    if raw:
        message.raw_input_contents.append(codec.encode_raw(array, datatype))
    else:
        codec.encode_contents(array, tensor)
    return message


def decoded(message: pb.ModelInferRequest) -> np.ndarray:
    (tensor,) = codec.decode_infer_request(message).inputs
    return tensor.data


def same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}")))
    return bool(np.array_equal(a, b))


@pytest.mark.parametrize("datatype", list(codec.DATATYPES))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_raw_contents_round_trip_every_datatype(datatype: str, data: st.DataObject) -> None:
    array = data.draw(tensors(datatype))
    got = decoded(request_with(array, datatype, raw=True))
    assert same(got, array.astype(got.dtype) if datatype != "BYTES" else array)


@pytest.mark.parametrize("datatype", TYPED)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_typed_and_raw_contents_give_the_same_tensor(datatype: str, data: st.DataObject) -> None:
    array = data.draw(tensors(datatype))
    raw = decoded(request_with(array, datatype, raw=True))
    typed = decoded(request_with(array, datatype, raw=False))
    assert same(raw, typed), (raw, typed)


@settings(max_examples=40, deadline=None)
@given(array=hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 4))))
def test_a_response_carries_the_outputs_bit_for_bit(array: np.ndarray) -> None:
    result = InferResult("m", "3", (Tensor("output__0", "FP32", array),), id="req-1")
    response = codec.encode_infer_response(result)
    assert (response.model_name, response.model_version, response.id) == ("m", "3", "req-1")
    (output,) = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == (
        "output__0",
        "FP32",
        list(array.shape),
    )
    back = codec.decode_tensor(output, response.raw_output_contents[0], "output")
    assert same(back, array)


def test_a_raw_fp32_input_is_read_without_a_copy() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    message = request_with(x, "FP32", raw=True)
    got = decoded(message)
    assert not got.flags.owndata and not got.flags.writeable  # a view of the message's bytes


def bad_bytes() -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="s", datatype="BYTES", shape=[2])
    message.raw_input_contents.append(struct.pack("<I", 3) + b"abc" + struct.pack("<I", 9) + b"x")
    return message


def typed_fp16() -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="h", datatype="FP16", shape=[1])
    return message


def with_tensor(datatype: str, shape: list[int], raw: bytes) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype=datatype, shape=shape)
    message.raw_input_contents.append(raw)
    return message


def int_overflow() -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m")
    tensor = message.inputs.add(name="x", datatype="INT8", shape=[1])
    tensor.contents.int_contents.append(300)
    return message


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (with_tensor("BF16", [1], b"\0\0"), "datatype 'BF16' is not one of"),
        (with_tensor("FP32", [2, -1], b""), "has a negative dimension"),
        (with_tensor("FP64", [2], b"\0" * 15), "15 bytes, expected 16 for shape [2] FP64"),
        (bad_bytes(), "raw BYTES element 1 runs past the end"),
        (with_tensor("BYTES", [1], b"\1\0\0\0ab"), "1 bytes left over"),
        (with_tensor("BYTES", [2], b"\1\0\0\0a"), "end before element 1 of 2"),
        (typed_fp16(), "datatype FP16 has no typed contents field; send it raw"),
        (int_overflow(), "contents.int_contents has a value outside INT8"),
    ],
    ids=["bf16", "negative", "short", "bytes-run", "bytes-left", "bytes-end", "fp16", "int8"],
)
def test_a_malformed_tensor_is_refused_naming_it(
    message: pb.ModelInferRequest, expected: str
) -> None:
    with pytest.raises(InvalidInput, match=r"^input '\w': ") as raised:
        codec.decode_infer_request(message)
    assert expected in str(raised.value)
