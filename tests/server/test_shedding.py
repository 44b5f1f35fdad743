"""Load shedding and deadlines on a live server: RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, and a
drain that completes what was accepted. Nothing here is timed: outcomes, not speeds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
import numpy as np

from forestgate.engine.model import CompiledModel
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc
from tests.server.conftest import rows
from tests.server.engines import Gate


def _request(x: np.ndarray, **params: int) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="fraud")
    request.inputs.add(name="input__0", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    for key, value in params.items():
        request.parameters[key].int64_param = value
    return request


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.005)


def test_full_queue_is_resource_exhausted_and_the_rest_are_right(serve_with, model_repository):
    """The first request is held in the engine and the next one fills the 4-row queue, so the
    other 58 concurrent requests are shed at once and exactly two are computed."""
    model = CompiledModel.open(model_repository / "fraud" / "2")
    batches = [rows(4, seed=i) for i in range(60)]
    gate = Gate()
    settings = {"max_batch_rows": 4, "max_queue_rows": 4, "execution": "thread"}
    with serve_with(model_repository, gate.wrap, **settings) as server:

        async def burst() -> list[object]:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                calls = [
                    asyncio.ensure_future(stub.ModelInfer(_request(x), timeout=30)) for x in batches
                ]
                await _until(lambda: sum(c.done() for c in calls) >= len(calls) - 2, "58 shed")
                gate.opened.set()
                return await asyncio.gather(*calls, return_exceptions=True)

        results = asyncio.run(burst())
    shed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(shed) == 58
    assert {r.code() for r in shed} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert "max_queue_rows=4" in shed[0].details()
    computed = 0
    for x, result in zip(batches, results, strict=True):
        if isinstance(result, pb.ModelInferResponse):
            got = np.frombuffer(result.raw_output_contents[0], dtype="<f4")
            np.testing.assert_array_equal(got, model.predict(x))
            computed += 1
    assert computed == 2


def test_expired_timeout_parameter_is_deadline_exceeded(live_server):
    with grpc.insecure_channel(live_server.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        # Triton's `timeout` parameter is in microseconds; 1 us passes before any batch forms.
        try:
            stub.ModelInfer(_request(rows(2), timeout=1), timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "deadline" in exc.details()
        else:
            raise AssertionError("a 1 us timeout was computed anyway")
        generous = stub.ModelInfer(_request(rows(2), timeout=5_000_000), timeout=10)
        assert len(generous.raw_output_contents[0]) == 8


def test_drain_completes_accepted_requests_and_refuses_new(serve_with, model_repository):
    """The first batch is held in the engine until the drain has begun, so every request is
    accepted before it and a request sent after it is refused, whatever the machine's load."""
    model = CompiledModel.open(model_repository / "fraud" / "2")
    gate = Gate()
    settings = {"max_batch_rows": 4, "max_queue_rows": 64, "execution": "thread"}
    with serve_with(model_repository, gate.wrap, **settings) as server:
        batcher = server.running.repository.get("fraud").batcher  # type: ignore[attr-defined]
        batches = [rows(2, seed=i) for i in range(8)]

        async def scenario() -> tuple[list[object], object]:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                calls = [
                    asyncio.ensure_future(stub.ModelInfer(_request(x), timeout=30)) for x in batches
                ]
                # 16 rows in all: the held batch's (one or two requests) and the queued ones.
                await _until(
                    lambda: gate.rows_in_engine + batcher.queue_rows == 16,
                    "all 8 requests are accepted",
                )
                drain = asyncio.wrap_future(
                    asyncio.run_coroutine_threadsafe(
                        server.running.drain_and_stop(30.0),
                        server.loop,  # type: ignore[attr-defined]
                    )
                )
                await _until(lambda: server.running.readiness.draining, "the drain has begun")
                late = await asyncio.gather(
                    stub.ModelInfer(_request(rows(1)), timeout=5), return_exceptions=True
                )
                gate.opened.set()
                accepted = await asyncio.gather(*calls, return_exceptions=True)
                await drain
                return accepted, late[0]

        accepted, late = asyncio.run(scenario())
    assert isinstance(late, grpc.aio.AioRpcError)
    assert late.code() == grpc.StatusCode.UNAVAILABLE
    for x, result in zip(batches, accepted, strict=True):
        assert isinstance(result, pb.ModelInferResponse), result
        got = np.frombuffer(result.raw_output_contents[0], dtype="<f4")
        np.testing.assert_array_equal(got, model.predict(x))
