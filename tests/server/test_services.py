"""Raw protocol checks with ForestGate's own stubs: typed input, every bad-input status, health,
reflection, and that a bad request never disturbs good ones."""

from __future__ import annotations

import shutil

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from forestgate.engine.model import CompiledModel
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc
from tests.server.conftest import NUM_FEATURES, rows


def _request(x: np.ndarray, *, raw: bool = True, model: str = "fraud") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, id="r1")
    tensor = request.inputs.add(name="input__0", datatype="FP32", shape=list(x.shape))
    if raw:
        request.raw_input_contents.append(x.tobytes())
    else:
        tensor.contents.fp32_contents.extend(x.ravel().tolist())
    return request


@pytest.fixture
def stub(live_server):
    with grpc.insecure_channel(live_server.address) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def test_typed_input_gives_the_same_raw_output(stub, model_repository):
    x = rows(4, seed=9)
    typed = stub.ModelInfer(_request(x, raw=False), timeout=10)
    raw = stub.ModelInfer(_request(x), timeout=10)
    assert typed.raw_output_contents == raw.raw_output_contents
    got = np.frombuffer(typed.raw_output_contents[0], dtype="<f4")
    np.testing.assert_array_equal(got, CompiledModel.open(model_repository / "fraud/2").predict(x))
    assert list(typed.outputs[0].shape) == [4]


def _cases() -> list[tuple[str, object, str]]:
    x = rows(2)

    def short_raw() -> pb.ModelInferRequest:
        r = _request(x)
        r.raw_input_contents[0] = x.tobytes()[:-4]
        return r

    def empty() -> pb.ModelInferRequest:
        r = pb.ModelInferRequest(model_name="fraud")
        r.inputs.add(name="input__0", datatype="FP32", shape=[0, NUM_FEATURES])
        r.raw_input_contents.append(b"")
        return r

    def two_inputs() -> pb.ModelInferRequest:
        r = _request(x)
        r.inputs.add(name="extra", datatype="FP32", shape=[2, NUM_FEATURES])
        r.raw_input_contents.append(x.tobytes())
        return r

    def raw_count() -> pb.ModelInferRequest:
        r = _request(x)
        r.inputs.add(name="extra", datatype="FP32", shape=[2, NUM_FEATURES])
        return r

    def bad_param() -> pb.ModelInferRequest:
        r = _request(x)
        r.parameters["timeout"].string_param = "soon"
        return r

    def empty_param() -> pb.ModelInferRequest:
        r = _request(x)
        r.parameters["anything"].CopyFrom(pb.InferParameter())
        return r

    def typed_count() -> pb.ModelInferRequest:
        r = _request(x, raw=False)
        del r.inputs[0].contents.fp32_contents[-1]
        return r

    def too_many_rows() -> pb.ModelInferRequest:
        return _request(np.zeros((100_001, NUM_FEATURES), np.float32))

    def one_dim() -> pb.ModelInferRequest:
        r = _request(x)
        del r.inputs[0].shape[:]
        r.inputs[0].shape.append(2 * NUM_FEATURES)
        return r

    def unknown_output() -> pb.ModelInferRequest:
        r = _request(x)
        r.outputs.add(name="probabilities")
        return r

    return [
        ("short raw", short_raw, "bytes, expected 64"),
        ("empty batch", empty, "no rows"),
        ("two inputs", two_inputs, "exactly 1 input"),
        ("raw count", raw_count, "raw_input_contents: expected 2 entries (one per input)"),
        ("bad timeout", bad_param, "parameters['timeout']"),
        ("empty parameter", empty_param, "parameters['anything']"),
        ("typed count", typed_count, "fp32_contents has 15 values"),
        ("too many rows", too_many_rows, "100001 rows, more than the limit of 100000"),
        ("1-D shape", one_dim, "expected [n, 8]"),
        ("unknown output", unknown_output, "'probabilities'"),
    ]


@pytest.mark.parametrize(("label", "make", "needle"), _cases(), ids=[c[0] for c in _cases()])
def test_bad_requests_are_invalid_argument_and_harmless(stub, label, make, needle):
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(make(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, label
    assert needle in info.value.details()
    good = stub.ModelInfer(_request(rows(3)), timeout=10)
    assert len(good.raw_output_contents[0]) == 12


def test_oversized_message_is_refused(serve_with, model_repository):
    with serve_with(model_repository, max_message_bytes=4096) as server:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(_request(rows(200)), timeout=10)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert stub.ModelInfer(_request(rows(1)), timeout=10).raw_output_contents


def test_health_overall_service_and_model(live_server):
    with grpc.insecure_channel(live_server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService", "fraud", "classes"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def _health(address: str, *services: str) -> dict[str, int]:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return {
            service: stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            for service in services
        }


def test_a_broken_newer_version_does_not_hide_a_serving_older_one(
    serve_with, model_repository, tmp_path
):
    repository = tmp_path / "repo"
    shutil.copytree(model_repository / "fraud", repository / "fraud")
    shutil.copytree(model_repository / "classes", repository / "broken")
    shutil.copytree(repository / "fraud" / "2", repository / "fraud" / "3")
    for bundle in (repository / "fraud" / "3", repository / "broken" / "1"):
        library = next(bundle.glob("*.so"))
        library.write_bytes(library.read_bytes()[::-1])  # fails its sha256 check
    with serve_with(repository) as server:
        index = {
            (e.name, e.version): e.state
            for e in server.running.repository.index()  # type: ignore[attr-defined]
        }
        assert index[("fraud", "3")] == "UNAVAILABLE"
        assert index[("fraud", "2")] == "READY"
        registry = server.running.metrics.registry  # type: ignore[attr-defined]
        failed = {
            (sample.labels["model"], sample.labels["version"], sample.value)
            for family in registry.collect()
            if family.name == "forestgate_model_load_failed"
            for sample in family.samples
        }
        assert failed == {("fraud", "3", 1.0), ("broken", "1", 1.0)}  # what alerts watch
        statuses = _health(server.address, "fraud", "broken")
        assert statuses == {
            "fraud": health_pb2.HealthCheckResponse.SERVING,  # requests reach fraud/2
            "broken": health_pb2.HealthCheckResponse.NOT_SERVING,  # no version loads
        }
        with grpc.insecure_channel(server.address) as channel:
            reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_request(rows(1)))
        assert reply.model_version == "2"


def test_unloading_a_model_makes_it_not_serving(serve_with, model_repository):
    with serve_with(model_repository) as server:
        assert _health(server.address, "fraud")["fraud"] == health_pb2.HealthCheckResponse.SERVING
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="fraud"))
            after = _health(server.address, "fraud", "classes")
            stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="fraud"))
        assert after == {
            "fraud": health_pb2.HealthCheckResponse.NOT_SERVING,
            "classes": health_pb2.HealthCheckResponse.SERVING,
        }
        assert _health(server.address, "fraud")["fraud"] == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("package", ["grpc.reflection.v1alpha", "grpc.reflection.v1"])
def test_reflection_lists_services_and_resolves_the_protocol(live_server, package):
    with grpc.insecure_channel(live_server.address) as channel:
        call = channel.stream_stream(
            f"/{package}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="inference.GRPCInferenceService"
            ),
        ]
        listed, files = list(call(iter(requests), timeout=10))
    names = {s.name for s in listed.list_services_response.service}
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names
    assert "grpc.reflection.v1.ServerReflection" in names
    from google.protobuf import descriptor_pb2

    proto = descriptor_pb2.FileDescriptorProto.FromString(
        files.file_descriptor_response.file_descriptor_proto[0]
    )
    assert proto.package == "inference"
    assert "ModelInfer" in [m.name for m in proto.service[0].method]
