"""Triton's ModelStatistics and ModelConfig, read with tritonclient from a live server; every
figure is checked against the requests the test itself sent."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable

import numpy as np
import pytest
import tritonclient.grpc as triton
from google.protobuf import descriptor_pb2
from prometheus_client import generate_latest
from tritonclient.grpc import model_config_pb2 as triton_config
from tritonclient.grpc import service_pb2 as triton_service
from tritonclient.utils import InferenceServerException

from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import model_config_pb2 as mc
from tests.server.conftest import NUM_FEATURES, rows
from tests.server.engines import Gate

Outcomes = queue.Queue[tuple[object, object]]


def _tensor(x: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput("input__0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return tensor


def _send(client: triton.InferenceServerClient, x: np.ndarray, outcomes: Outcomes) -> None:
    client.async_infer("fraud", [_tensor(x)], lambda result, error: outcomes.put((result, error)))


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


def _batches(stats: triton_service.ModelStatistics) -> dict[int, object]:
    return {entry.batch_size: entry for entry in stats.batch_stats}


def _sample(registry: object, line_start: str) -> float:
    for line in generate_latest(registry).decode().splitlines():  # type: ignore[arg-type]
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{line_start} not in metrics")


def test_statistics_count_the_requests_rows_and_batches_sent(serve_with, model_repository):
    """One request is held in the engine while four more (1, 1, 1 and 3 rows) queue behind it,
    so the engine sees exactly two batches: 1 row, then 6 rows of four requests."""
    gate = Gate()
    with serve_with(model_repository, gate.wrap, max_batch_rows=8) as server:
        client = triton.InferenceServerClient(server.address)
        batcher = server.running.repository.get("fraud").batcher  # type: ignore[attr-defined]
        before_ms = time.time_ns() // 1_000_000
        outcomes: Outcomes = queue.Queue()
        blocks = [rows(n, seed=i) for i, n in enumerate((1, 1, 1, 1, 3))]
        _send(client, blocks[0], outcomes)
        assert gate.entered.wait(20), "no batch reached the engine"
        for x in blocks[1:]:
            _send(client, x, outcomes)
        _until(lambda: batcher.queue_rows == 6, "the four later requests are queued")
        gate.opened.set()
        assert all(outcomes.get(timeout=30)[1] is None for _ in blocks)
        after_ms = time.time_ns() // 1_000_000
        (stats,) = client.get_inference_statistics("fraud", "2").model_stats
        (untouched,) = client.get_inference_statistics("fraud", "1").model_stats
        client.infer("fraud", [_tensor(rows(2))], model_version="1")
        everything = client.get_inference_statistics().model_stats
        registry = server.running.metrics.registry  # type: ignore[attr-defined]
        prometheus_batches = _sample(registry, 'forestgate_batch_rows_count{model="fraud"}')
    assert gate.sizes() == [1, 6, 2]
    assert (stats.name, stats.version) == ("fraud", "2")
    assert (stats.inference_count, stats.execution_count) == (7, 2)
    assert before_ms <= stats.last_inference <= after_ms
    figures = stats.inference_stats
    assert (figures.success.count, figures.fail.count, figures.queue.count) == (5, 0, 5)
    assert figures.queue.ns > 0  # four requests waited while the first was held
    sizes = _batches(stats)
    assert sorted(sizes) == [1, 6]
    for name in ("compute_input", "compute_infer", "compute_output"):
        per_request = getattr(figures, name)
        one, six = getattr(sizes[1], name), getattr(sizes[6], name)
        assert (per_request.count, one.count, six.count) == (5, 1, 1)
        # Each request is charged its whole batch's time, as Triton does.
        assert per_request.ns == one.ns + 4 * six.ns
    assert sizes[1].compute_infer.ns > 0  # that batch sat in the engine until the gate opened
    assert figures.success.ns == sum(
        getattr(figures, name).ns
        for name in ("queue", "compute_input", "compute_infer", "compute_output")
    )
    assert untouched.inference_count == 0 and untouched.inference_stats.success.count == 0
    by_version = {(s.name, s.version): s for s in everything}
    assert list(by_version) == [("classes", "1"), ("fraud", "1"), ("fraud", "2")]
    assert by_version[("fraud", "1")].inference_count == 2
    assert by_version[("fraud", "2")].inference_count == 7
    assert prometheus_batches == 3  # Prometheus sums a model's versions


def test_a_refused_request_counts_as_a_failure_and_json_reads_the_same(live_server):
    client = triton.InferenceServerClient(live_server.address)
    for n in (1, 2):
        client.infer("fraud", [_tensor(rows(n))])
    bad = triton.InferInput("input__0", [2, 5], "FP32")
    bad.set_data_from_numpy(rows(2)[:, :5].copy())
    with pytest.raises(InferenceServerException) as info:
        client.infer("fraud", [bad])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    response = client.get_inference_statistics("fraud", "2", as_json=True)
    (stats,) = response["model_stats"]
    figures = stats["inference_stats"]
    # JSON, as protobuf writes it: 64-bit integers as strings, zeros left out.
    assert figures["success"]["count"] == "2"
    assert figures["fail"] == {"count": "1"}  # refused before it was queued: no time spent
    assert (stats["inference_count"], stats["execution_count"]) == ("3", "2")
    sizes = {entry["batch_size"]: entry["compute_infer"]["count"] for entry in stats["batch_stats"]}
    assert sizes == {"1": "1", "2": "1"}
    registry = live_server.running.metrics.registry  # type: ignore[attr-defined]
    assert _sample(registry, 'forestgate_rejected_total{model="fraud",reason="invalid"}') == 1


def test_model_config_reports_tensors_and_the_batching_in_force(serve_with, model_repository):
    with serve_with(model_repository, max_batch_rows=32, max_queue_delay_us=250) as server:
        client = triton.InferenceServerClient(server.address)
        config = client.get_model_config("fraud").config
        multiclass = client.get_model_config("classes", "1").config
        as_json = client.get_model_config("fraud", "1", as_json=True)["config"]
    assert (config.name, config.platform, config.backend) == (
        "fraud", "forestgate_tl2cgen", "forestgate",
    )  # fmt: skip
    assert config.max_batch_size == 32
    assert config.WhichOneof("scheduling_choice") == "dynamic_batching"
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert config.version_policy.WhichOneof("policy_choice") == "all"
    (tensor,) = config.input
    assert (tensor.name, tensor.data_type, list(tensor.dims)) == (
        "input__0", triton_config.TYPE_FP32, [NUM_FEATURES],
    )  # fmt: skip
    (output,) = config.output
    # A [batch] output, in Triton's words: one value per row, reshaped to no dimensions.
    assert (output.name, output.data_type, list(output.dims)) == (
        "output__0", triton_config.TYPE_FP32, [1],
    )  # fmt: skip
    assert output.HasField("reshape") and list(output.reshape.shape) == []
    assert config.parameters["task"].string_value == "binary"
    (scores,) = multiclass.output
    assert list(scores.dims) == [3] and not scores.HasField("reshape")
    assert as_json["max_batch_size"] == 32
    assert as_json["input"] == [{"name": "input__0", "data_type": "TYPE_FP32", "dims": ["8"]}]
    assert as_json["dynamic_batching"] == {"max_queue_delay_microseconds": "250"}
    assert as_json["parameters"]["version"] == {"string_value": "1"}


@pytest.mark.parametrize(("name", "version"), [("nope", ""), ("fraud", "7")])
def test_an_unknown_model_or_version_is_not_found_by_both(live_server, name, version):
    client = triton.InferenceServerClient(live_server.address)
    for call in (client.get_inference_statistics, client.get_model_config):
        with pytest.raises(InferenceServerException) as info:
            call(name, version)
        assert info.value.status() == "StatusCode.NOT_FOUND"
        assert repr(name if name == "nope" else version) in info.value.message()


def _messages(file: object) -> dict[str, descriptor_pb2.DescriptorProto]:
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)  # type: ignore[attr-defined]
    found: dict[str, descriptor_pb2.DescriptorProto] = {}

    def walk(prefix: str, messages: object) -> None:
        for message in messages:  # type: ignore[attr-defined]
            found[prefix + message.name] = message
            walk(prefix + message.name + ".", message.nested_type)

    walk("", proto.message_type)
    return found


def test_the_triton_messages_have_triton_s_names_numbers_and_types():
    """Every field ForestGate defines is either Triton's own (same number, name, type and
    label) or uses a name and number Triton does not."""
    theirs = _messages(triton_service.DESCRIPTOR) | _messages(triton_config.DESCRIPTOR)
    ours = _messages(pb.DESCRIPTOR) | _messages(mc.DESCRIPTOR)
    added = [
        "ModelConfig", "ModelInput", "ModelOutput", "ModelDynamicBatching", "ModelVersionPolicy",
        "ModelStatistics", "InferStatistics", "InferBatchStatistics", "StatisticDuration",
    ]  # fmt: skip
    assert set(added) <= set(ours) & set(theirs)
    for name, message in ours.items():
        if name not in theirs:
            continue
        by_number = {field.number: field for field in theirs[name].field}
        by_name = {field.name: field for field in theirs[name].field}
        for field in message.field:
            twin = by_number.get(field.number)
            if twin is None:
                assert field.name not in by_name, f"{name}.{field.name}: another number"
                continue
            got = (field.name, field.type, field.label, field.type_name.rsplit(".", 1)[-1])
            want = (twin.name, twin.type, twin.label, twin.type_name.rsplit(".", 1)[-1])
            assert got == want, f"{name} field {field.number}"
    values = {value.name: value.number for value in mc.DataType.DESCRIPTOR.values}
    assert values == {v.name: v.number for v in triton_config.DataType.DESCRIPTOR.values}
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    triton_methods = triton_service.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method in ("ModelConfig", "ModelStatistics"):
        mine, twin = service.methods_by_name[method], triton_methods.methods_by_name[method]
        assert mine.input_type.name == twin.input_type.name
        assert mine.output_type.name == twin.output_type.name
