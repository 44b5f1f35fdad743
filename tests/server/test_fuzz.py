"""Hypothesis fuzzing of ModelInfer on a live server: random and mutated requests get a
well-formed response or a clean status, and correct requests stay correct throughout."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forestgate.engine.model import CompiledModel
from forestgate.protos.inference import grpc_service_pb2 as pb
from tests.server.conftest import NUM_FEATURES, rows

CLEAN = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
names = st.sampled_from(["fraud", "classes", "", "nope"]) | st.text(max_size=12)
versions = st.sampled_from(["", "1", "2", "3"]) | st.text(max_size=4)
datatypes = st.sampled_from(["FP32", "FP64", "INT32", "BYTES", "", "fp32"])
dims = st.integers(-3, 4) | st.sampled_from([NUM_FEATURES, 3, 256, 257, 2**31, -(2**40)])
shapes = st.lists(dims, max_size=3) | st.tuples(st.integers(1, 4), st.just(NUM_FEATURES)).map(list)
parameter = st.one_of(
    st.builds(pb.InferParameter, bool_param=st.booleans()),
    st.builds(pb.InferParameter, int64_param=st.integers(-(2**63), 2**63 - 1)),
    st.builds(pb.InferParameter, string_param=st.text(max_size=8)),
    st.builds(pb.InferParameter, double_param=st.floats(allow_nan=True)),
    st.builds(pb.InferParameter, uint64_param=st.integers(0, 2**64 - 1)),
    st.just(pb.InferParameter()),
)
parameters = st.dictionaries(
    st.sampled_from(["timeout", "priority", "binary_data_output", "other"]), parameter, max_size=3
)


@st.composite
def requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=draw(names), model_version=draw(versions))
    for key, value in draw(parameters).items():
        request.parameters[key].CopyFrom(value)
    for _ in range(draw(st.integers(0, 2))):
        shape = draw(shapes)
        tensor = request.inputs.add(name=draw(st.sampled_from(["input__0", "x"])),
                                    datatype=draw(datatypes), shape=shape)  # fmt: skip
        count = int(np.prod(shape)) if shape and all(0 <= d <= 512 for d in shape) else 3
        count = count if count <= 2048 else 5
        if draw(st.booleans()):
            size = draw(st.sampled_from([count * 4, count * 4 - 1, 0, 7]))
            request.raw_input_contents.append(draw(st.binary(min_size=max(size, 0),
                                                             max_size=max(size, 0))))  # fmt: skip
        else:
            n = draw(st.sampled_from([count, count + 1, 0]))
            tensor.contents.fp32_contents.extend(
                draw(st.lists(st.floats(width=32), min_size=n, max_size=n))
            )
    for name in draw(st.lists(st.sampled_from(["output__0", "probabilities"]), max_size=2)):
        request.outputs.add(name=name)
    return request


def _assert_clean(call: object, payload: bytes, parseable: bool) -> None:
    try:
        reply = call(payload, timeout=10)  # type: ignore[operator]
    except grpc.RpcError as exc:
        allowed = CLEAN if parseable else CLEAN | {grpc.StatusCode.INTERNAL}
        assert exc.code() in allowed, (exc.code(), exc.details())
        assert exc.details(), "an error without a message"
        return
    response = pb.ModelInferResponse.FromString(reply)
    (output,) = response.outputs
    assert output.datatype == "FP32"
    assert len(response.raw_output_contents[0]) == 4 * int(np.prod(output.shape))


@pytest.fixture
def channel(live_server):
    with grpc.insecure_channel(live_server.address) as channel:
        yield channel


def _raw_call(channel: grpc.Channel):  # type: ignore[no-untyped-def]
    return channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )


def _check_good(channel: grpc.Channel, model: CompiledModel, seed: int) -> None:
    x = rows(3, seed=seed)
    good = pb.ModelInferRequest(model_name="fraud", model_version="2")
    good.inputs.add(name="input__0", datatype="FP32", shape=[3, NUM_FEATURES])
    good.raw_input_contents.append(x.tobytes())
    reply = pb.ModelInferResponse.FromString(_raw_call(channel)(good.SerializeToString()))
    np.testing.assert_array_equal(
        np.frombuffer(reply.raw_output_contents[0], dtype="<f4"), model.predict(x)
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests())
def test_random_requests_get_clean_answers(channel, model_repository, request):
    model = CompiledModel.open(model_repository / "fraud" / "2", check_hash=False)
    _assert_clean(_raw_call(channel), request.SerializeToString(), parseable=True)
    _check_good(channel, model, seed=len(request.SerializeToString()))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_byte_mutated_requests_get_clean_answers(channel, model_repository, data):
    model = CompiledModel.open(model_repository / "fraud" / "2", check_hash=False)
    valid = pb.ModelInferRequest(model_name="fraud")
    valid.inputs.add(name="input__0", datatype="FP32", shape=[2, NUM_FEATURES])
    valid.raw_input_contents.append(rows(2).tobytes())
    payload = bytearray(valid.SerializeToString())
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        payload = payload[: data.draw(st.integers(0, len(payload)))]
    try:
        pb.ModelInferRequest.FromString(bytes(payload))
        parseable = True
    except DecodeError:
        parseable = False
    _assert_clean(_raw_call(channel), bytes(payload), parseable)
    _check_good(channel, model, seed=len(payload))
