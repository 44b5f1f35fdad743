"""The Python client against a live server: scores, metadata, health, typed errors, retries of
UNAVAILABLE only, deadlines, and W3C trace context from the caller's span."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import uvloop
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from forestgate.clients import errors
from forestgate.clients.client import AsyncForestGateClient, ForestGateClient, RetryPolicy
from forestgate.engine.model import CompiledModel
from forestgate.protos.inference import grpc_service_pb2 as pb
from tests.server.conftest import (  # noqa: F401 (fixtures)
    calibrated_repository,
    live_server,
    model_repository,
    rows,
    serve_with,
)


def test_infer_metadata_and_health(live_server, model_repository):  # noqa: F811
    x = rows(5, seed=4)
    with ForestGateClient(live_server.address, timeout_s=5) as client:
        expected = CompiledModel.open(model_repository / "fraud" / "1").predict(x)
        np.testing.assert_array_equal(client.infer("fraud", x, version="1"), expected)
        assert client.infer("fraud", x[0]).shape == (1,)
        assert client.infer("classes", x).shape == (5, 3)
        info = client.model_metadata("fraud")
        assert (info.versions, info.num_features, info.output_shape) == (["1", "2"], 8, [-1])
        assert info.feature_names == [f"f{i}" for i in range(8)]
        assert info.task == "binary"
        assert client.server_live() and client.server_ready()
        assert client.model_ready("fraud", version="2")
        assert not client.model_ready("fraud", version="7")
        assert client.health() == "SERVING"
        assert client.health("classes") == "SERVING"


def test_status_codes_become_typed_exceptions(live_server):  # noqa: F811
    with ForestGateClient(live_server.address, timeout_s=5) as client:
        with pytest.raises(errors.NotFound) as info:
            client.infer("nope", rows(1))
        assert info.value.code == grpc.StatusCode.NOT_FOUND and "nope" in info.value.details
        with pytest.raises(errors.InvalidArgument, match="expected"):
            client.infer("fraud", np.zeros((1, 3), np.float32))
        with pytest.raises(errors.NotFound):
            client.health("nope")


def test_async_client_matches_the_sync_one(live_server):  # noqa: F811
    x = rows(4, seed=8)

    async def run() -> tuple[np.ndarray, str]:
        async with AsyncForestGateClient(live_server.address, timeout_s=5) as client:
            scores = await client.infer("fraud", x)
            with pytest.raises(errors.NotFound):
                await client.infer("fraud", x, version="9")
            return scores, await client.health("fraud")

    scores, health = asyncio.run(run())
    with ForestGateClient(live_server.address, timeout_s=5) as client:
        np.testing.assert_array_equal(scores, client.infer("fraud", x))
    assert health == "SERVING"


def test_timeout_must_be_finite_and_positive():
    with pytest.raises(ValueError, match="timeout_s"):
        ForestGateClient("127.0.0.1:1", timeout_s=0)


class _Scripted:
    """A real gRPC server whose ModelInfer answers from a script of status codes, then OK,
    and records the metadata of every call."""

    def __init__(self, script: list[grpc.StatusCode]) -> None:
        self.script = list(script)
        self.calls = 0
        self.metadata: list[dict[str, str]] = []

    async def infer(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        self.metadata.append({k: v for k, v in context.invocation_metadata()})
        if self.script:
            await context.abort(self.script.pop(0), "scripted")
        reply = pb.ModelInferResponse(model_name="m")
        reply.outputs.add(name="output__0", datatype="FP32", shape=[1])
        reply.raw_output_contents.append(np.float32(0.5).tobytes())
        return reply.SerializeToString()


def _scripted_server(script: list[grpc.StatusCode]) -> Iterator[tuple[str, _Scripted]]:
    scripted = _Scripted(script)
    ready = threading.Event()
    box: dict[str, object] = {}

    async def main() -> None:
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(scripted.infer)
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "inference.GRPCInferenceService", {"ModelInfer": handler}
                ),
            )
        )
        box["port"] = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        box["stop"] = stop = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        await stop.wait()
        await server.stop(0)

    thread = threading.Thread(target=lambda: uvloop.run(main()), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"127.0.0.1:{box['port']}", scripted
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
        thread.join(10)


@pytest.fixture
def scripted_server():
    servers = []

    def start(script: list[grpc.StatusCode]) -> tuple[str, _Scripted]:
        gen = _scripted_server(script)
        servers.append(gen)
        return next(gen)

    yield start
    for gen in servers:
        gen.close()


def test_unavailable_is_retried_within_max_attempts(scripted_server):
    address, scripted = scripted_server([grpc.StatusCode.UNAVAILABLE] * 2)
    with ForestGateClient(address, timeout_s=5, retry=RetryPolicy(max_attempts=3)) as client:
        assert client.infer("m", rows(1)).tolist() == [0.5]
    assert scripted.calls == 3


def test_retries_give_up_after_max_attempts(scripted_server):
    address, scripted = scripted_server([grpc.StatusCode.UNAVAILABLE] * 5)
    with ForestGateClient(address, timeout_s=5, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(errors.Unavailable):
            client.infer("m", rows(1))
    assert scripted.calls == 2


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.Overloaded),
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.INTERNAL, errors.ClientError),
    ],
)
def test_other_codes_are_never_retried(scripted_server, code, kind):
    address, scripted = scripted_server([code] * 3)
    with ForestGateClient(address, timeout_s=5) as client:
        with pytest.raises(kind):
            client.infer("m", rows(1))
    assert scripted.calls == 1


def test_retry_budget_stops_retrying_a_failing_server(scripted_server):
    # 10 tokens, each failure costs one; below half the bucket gRPC stops retrying.
    address, scripted = scripted_server([grpc.StatusCode.UNAVAILABLE] * 100)
    policy = RetryPolicy(max_attempts=5, budget_tokens=10, budget_token_ratio=0.1)
    with ForestGateClient(address, timeout_s=5, retry=policy) as client:
        for _ in range(10):
            with pytest.raises(errors.Unavailable):
                client.infer("m", rows(1))
    assert scripted.calls < 10 * 5
    assert scripted.calls >= 10


def test_deadline_exceeded_is_typed(scripted_server):
    address, _ = scripted_server([grpc.StatusCode.DEADLINE_EXCEEDED])
    with ForestGateClient(address, timeout_s=5) as client:
        with pytest.raises(errors.DeadlineExceeded):
            client.infer("m", rows(1))


def test_trace_context_of_the_current_span_is_sent(scripted_server):
    address, scripted = scripted_server([])
    tracer = TracerProvider().get_tracer("test")
    with ForestGateClient(address, timeout_s=5) as client:
        with tracer.start_as_current_span("authorize") as span:
            client.infer("m", rows(1))
        client.infer("m", rows(1))
    trace_id = format(span.get_span_context().trace_id, "032x")
    span_id = format(span.get_span_context().span_id, "016x")
    version, sent_trace, sent_span, flags = scripted.metadata[0]["traceparent"].split("-")
    assert (version, sent_trace, sent_span) == ("00", trace_id, span_id)
    assert int(flags, 16) & 1  # sampled
    assert "traceparent" not in scripted.metadata[1]
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_calibrated_models_give_raw_scores_by_default_and_probabilities_on_request(
    serve_with,  # noqa: F811
    calibrated_repository,  # noqa: F811
):
    model = CompiledModel.open(calibrated_repository / "approval" / "1")
    x = rows(32, seed=4)
    with serve_with(calibrated_repository) as server:
        with ForestGateClient(server.address) as client:
            raw = client.infer("approval", x)
            probability = client.infer("approval", x, output="probability")
            with pytest.raises(errors.InvalidArgument, match="nope"):
                client.infer("approval", x, output="nope")

        async def call() -> np.ndarray:
            async with AsyncForestGateClient(server.address) as client:
                return await client.infer("approval", x, output="probability")

        async_probability = uvloop.run(call())
    np.testing.assert_array_equal(raw, model.predict(x))
    np.testing.assert_allclose(probability, model.calibrate(raw), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(async_probability, probability)
