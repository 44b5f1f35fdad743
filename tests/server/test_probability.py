"""The `probability` output of a binary model with a calibration map, over the Open Inference
Protocol with tritonclient.grpc: listed in the metadata, returned when asked for or when no
output is named, computed only then, and a bundle with a damaged map refused on reload."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from forestgate.engine.model import CompiledModel
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc
from tests.server.conftest import rows


@pytest.fixture
def server(serve_with, calibrated_repository):
    with serve_with(calibrated_repository) as running:
        yield running


def _infer(
    client: triton.InferenceServerClient, x: np.ndarray, *outputs: str, model: str = "approval"
) -> triton.InferResult:
    tensor = triton.InferInput("input__0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    wanted = [triton.InferRequestedOutput(name) for name in outputs] or None
    return client.infer(model, [tensor], outputs=wanted)


def _approval(repository: Path) -> CompiledModel:
    return CompiledModel.open(repository / "approval" / "1")


def test_metadata_lists_the_probability_output_of_calibrated_models_only(server):
    client = triton.InferenceServerClient(server.address)
    outputs = client.get_model_metadata("approval").outputs
    assert [(o.name, o.datatype, list(o.shape)) for o in outputs] == [
        ("output__0", "FP32", [-1]),
        ("probability", "FP32", [-1]),
    ]
    assert [o.name for o in client.get_model_metadata("fraud").outputs] == ["output__0"]
    with grpc.insecure_channel(server.address) as channel:
        ours = pb_grpc.GRPCInferenceServiceStub(channel).ModelMetadata(
            pb.ModelMetadataRequest(name="approval"), timeout=5
        )
    parameters = ours.outputs[1].parameters
    assert parameters["calibration"].string_param.startswith("isotonic, ")
    assert "calibrated probability" in parameters["meaning"].string_param


@pytest.mark.parametrize("n", [1, 7, 64])
def test_probability_is_the_map_applied_to_the_raw_output(server, calibrated_repository, n):
    from sklearn.isotonic import IsotonicRegression

    model = _approval(calibrated_repository)
    assert model.calibration is not None
    x = rows(n, seed=40 + n)
    result = _infer(triton.InferenceServerClient(server.address), x)  # no outputs named: all
    raw, probability = result.as_numpy("output__0"), result.as_numpy("probability")
    np.testing.assert_array_equal(raw, model.predict(x))
    assert probability.dtype == np.float32 and probability.shape == (n,)
    np.testing.assert_array_equal(probability, model.calibration.apply(raw).astype(np.float32))
    np.testing.assert_array_equal(probability, model.predict_calibrated(x))
    # and the map is the one scikit-learn fitted, rebuilt from the manifest alone
    isotonic = IsotonicRegression(out_of_bounds="clip")
    isotonic.fit(model.calibration.x, model.calibration.y)
    np.testing.assert_allclose(probability, isotonic.predict(raw.astype(np.float64)), atol=1e-7)
    assert [o.name for o in result.get_response().outputs] == ["output__0", "probability"]


def test_named_outputs_are_returned_alone_and_in_order(server, calibrated_repository):
    client = triton.InferenceServerClient(server.address)
    model = _approval(calibrated_repository)
    x = rows(5, seed=3)
    only_p = _infer(client, x, "probability")
    assert [o.name for o in only_p.get_response().outputs] == ["probability"]
    assert only_p.as_numpy("output__0") is None
    np.testing.assert_array_equal(only_p.as_numpy("probability"), model.predict_calibrated(x))
    both = _infer(client, x, "probability", "output__0")
    assert [o.name for o in both.get_response().outputs] == ["probability", "output__0"]
    np.testing.assert_array_equal(both.as_numpy("output__0"), model.predict(x))


def test_raw_output_alone_does_not_compute_the_probability(server):
    loaded = server.running.repository.get("approval")
    calls: list[int] = []
    calibrate = loaded.model.calibrate

    def counting(scores: np.ndarray) -> np.ndarray:
        calls.append(len(scores))
        return calibrate(scores)

    loaded.model.calibrate = counting  # the served instance, in this process
    client = triton.InferenceServerClient(server.address)
    raw_only = _infer(client, rows(3), "output__0")
    assert [o.name for o in raw_only.get_response().outputs] == ["output__0"]
    assert calls == []
    _infer(client, rows(4))
    assert calls == [4]


@pytest.mark.parametrize(
    ("model", "output", "needle"),
    [
        ("fraud", "probability", "unknown output 'probability', expected 'output__0'"),
        ("approval", "proba", "unknown output 'proba', expected 'output__0' or 'probability'"),
    ],
)
def test_unknown_output_is_invalid_argument(server, model, output, needle):
    client = triton.InferenceServerClient(server.address)
    with pytest.raises(InferenceServerException) as info:
        _infer(client, rows(2), output, model=model)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert needle in info.value.message()


def test_bundle_with_a_damaged_map_is_refused_and_the_old_one_serves(
    serve_with, calibrated_repository, tmp_path
):
    repository = tmp_path / "repo"
    shutil.copytree(calibrated_repository, repository)
    x = rows(6, seed=11)
    expected = _approval(repository).predict_calibrated(x)
    with serve_with(repository) as running:
        client = triton.InferenceServerClient(running.address)
        # version 2 appears: the same library, but a map whose y falls
        damaged = repository / "approval" / "2"
        shutil.copytree(repository / "approval" / "1", damaged)
        manifest = json.loads((damaged / "manifest.json").read_text())
        manifest["version"] = "2"
        manifest["calibration"]["y"][-1] = manifest["calibration"]["y"][0] - 0.01
        (damaged / "manifest.json").write_text(json.dumps(manifest))
        client.load_model("approval")
        index = {(m.name, m.version): m for m in client.get_model_repository_index().models}
        assert index[("approval", "1")].state == "READY"
        assert index[("approval", "2")].state == "UNAVAILABLE"
        assert "field 'calibration.y' is" in index[("approval", "2")].reason
        result = _infer(client, x)
        assert result.get_response().model_version == "1"
        np.testing.assert_array_equal(result.as_numpy("probability"), expected)
