"""The Open Inference Protocol, driven by tritonclient.grpc against a live server."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from forestgate.engine.model import CompiledModel
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc
from tests.server.conftest import NUM_FEATURES, rows


def _infer(client: triton.InferenceServerClient, model: str, x: np.ndarray, version: str = ""):
    tensor = triton.InferInput("input__0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return client.infer(model, [tensor], model_version=version, request_id="req-7")


def test_health_and_server_metadata(live_server):
    client = triton.InferenceServerClient(live_server.address)
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta.name == "forestgate"
    assert "model_repository" in meta.extensions


def test_model_metadata_reports_features_and_shape(live_server, model_repository):
    client = triton.InferenceServerClient(live_server.address)
    meta = client.get_model_metadata("fraud")
    assert list(meta.versions) == ["1", "2"]
    (tensor,) = meta.inputs
    assert (tensor.name, tensor.datatype, list(tensor.shape)) == ("input__0", "FP32", [-1, 8])
    # Triton's own proto has no metadata parameters, so tritonclient drops them; KServe and
    # MLServer clients (and ours) read the feature names from there.
    with grpc.insecure_channel(live_server.address) as channel:
        ours = pb_grpc.GRPCInferenceServiceStub(channel).ModelMetadata(
            pb.ModelMetadataRequest(name="fraud"), timeout=5
        )
    names = json.loads(ours.inputs[0].parameters["feature_names"].string_param)
    assert names == CompiledModel.open(model_repository / "fraud" / "2").manifest.feature_names
    assert ours.parameters["task"].string_param == "binary"
    assert list(meta.outputs[0].shape) == [-1]
    multi = client.get_model_metadata("classes")
    assert list(multi.outputs[0].shape) == [-1, 3]
    assert client.is_model_ready("fraud", "1")
    assert not client.is_model_ready("fraud", "9")
    assert not client.is_model_ready("nope")


@pytest.mark.parametrize("n", [1, 3, 64])
def test_infer_matches_the_bundle_for_each_version(live_server, model_repository, n):
    client = triton.InferenceServerClient(live_server.address)
    x = rows(n, seed=n)
    for version in ("1", "2"):
        expected = CompiledModel.open(model_repository / "fraud" / version).predict(x)
        result = _infer(client, "fraud", x, version)
        np.testing.assert_array_equal(result.as_numpy("output__0"), expected)
        response = result.get_response()
        assert (response.model_version, response.id) == (version, "req-7")
    latest = _infer(client, "fraud", x).get_response()
    assert latest.model_version == "2"


def test_infer_multiclass_model(live_server, model_repository):
    client = triton.InferenceServerClient(live_server.address)
    x = rows(5, seed=3)
    out = _infer(client, "classes", x).as_numpy("output__0")
    assert out.shape == (5, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    expected = CompiledModel.open(model_repository / "classes" / "1").predict(x)
    np.testing.assert_array_equal(out, expected)


def test_concurrent_requests_each_get_their_own_rows(live_server, model_repository):
    client = triton.InferenceServerClient(live_server.address)
    model = CompiledModel.open(model_repository / "fraud" / "2")
    batches = [rows(1 + i % 5, seed=100 + i) for i in range(40)]
    results = []

    def done(result, error):
        results.append((result, error))

    for i, x in enumerate(batches):
        tensor = triton.InferInput("input__0", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        client.async_infer("fraud", [tensor], done, request_id=str(i))
    import time

    deadline = time.monotonic() + 30
    while len(results) < len(batches) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(results) == len(batches)
    for result, error in results:
        assert error is None
        i = int(result.get_response().id)
        np.testing.assert_array_equal(result.as_numpy("output__0"), model.predict(batches[i]))


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda t, x: triton.InferInput("input__0", [2, NUM_FEATURES], "FP64"), "FP64"),
        (lambda t, x: triton.InferInput("input__0", [2, 5], "FP32"), "[n, 8]"),
    ],
)
def test_bad_tensor_is_invalid_argument(live_server, mutate, needle):
    client = triton.InferenceServerClient(live_server.address)
    x = rows(2)
    tensor = mutate(None, x)
    data = x.astype(np.float64) if tensor.datatype() == "FP64" else x[:, :5].copy()
    tensor.set_data_from_numpy(data)
    with pytest.raises(InferenceServerException) as info:
        client.infer("fraud", [tensor])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert needle in info.value.message()
    assert "input__0" in info.value.message()


def test_unknown_model_and_version_are_not_found(live_server):
    client = triton.InferenceServerClient(live_server.address)
    with pytest.raises(InferenceServerException) as info:
        _infer(client, "nope", rows(1))
    assert info.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as info:
        _infer(client, "fraud", rows(1), version="7")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    assert "'7'" in info.value.message()


def test_repository_index_and_unload_load(live_server):
    client = triton.InferenceServerClient(live_server.address)
    index = client.get_model_repository_index()
    assert {(m.name, m.version, m.state) for m in index.models} == {
        ("fraud", "1", "READY"), ("fraud", "2", "READY"), ("classes", "1", "READY"),
    }  # fmt: skip
    client.unload_model("classes")
    assert not client.is_model_ready("classes")
    with pytest.raises(InferenceServerException) as info:
        _infer(client, "classes", rows(1))
    assert info.value.status() == "StatusCode.NOT_FOUND"
    client.load_model("classes")
    assert _infer(client, "classes", rows(2)).as_numpy("output__0").shape == (2, 3)
