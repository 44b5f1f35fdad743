"""Load shedding and deadlines on a live server: RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, and a
drain that completes what was accepted. Nothing here is timed: outcomes, not speeds."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np

from forestgate.compiler.runtime import CompiledModel
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc
from forestgate.server.batcher import MicroBatcher
from tests.server.conftest import rows


def _request(x: np.ndarray, **params: int) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="fraud")
    request.inputs.add(name="input__0", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    for key, value in params.items():
        request.parameters[key].int64_param = value
    return request


def test_full_queue_is_resource_exhausted_and_the_rest_are_right(serve_with, model_repository):
    model = CompiledModel.open(model_repository / "fraud" / "2")
    batches = [rows(4, seed=i) for i in range(60)]
    with serve_with(model_repository, max_batch_rows=4, max_queue_rows=4) as server:

        async def burst() -> list[object]:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                calls = [stub.ModelInfer(_request(x), timeout=10) for x in batches]
                return await asyncio.gather(*calls, return_exceptions=True)

        results = asyncio.run(burst())
    shed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert shed, "60 concurrent 4-row requests against a 4-row queue shed none"
    assert {r.code() for r in shed} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert "max_queue_rows=4" in shed[0].details()
    for x, result in zip(batches, results, strict=True):
        if isinstance(result, pb.ModelInferResponse):
            got = np.frombuffer(result.raw_output_contents[0], dtype="<f4")
            np.testing.assert_array_equal(got, model.predict(x))


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
    """A slow engine (a real model behind a 50 ms sleep, run on the batcher's thread) keeps
    requests in flight while the server drains."""
    model = CompiledModel.open(model_repository / "fraud" / "2")

    def slow_predict(x: np.ndarray) -> np.ndarray:
        time.sleep(0.05)
        return model.predict(x)

    with serve_with(model_repository) as server:
        loaded = server.running.repository.get("fraud")  # type: ignore[attr-defined]

        async def install() -> None:
            loaded.batcher = MicroBatcher(
                slow_predict, num_features=model.num_features, max_batch_rows=4,
                max_queue_rows=64, execution="thread", name="fraud/slow",
            )  # fmt: skip

        asyncio.run_coroutine_threadsafe(install(), server.loop).result(10)
        batches = [rows(2, seed=i) for i in range(8)]

        async def scenario() -> tuple[list[object], object]:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                calls = [stub.ModelInfer(_request(x), timeout=10) for x in batches]
                await asyncio.sleep(0.02)
                drain = asyncio.wrap_future(
                    asyncio.run_coroutine_threadsafe(
                        server.running.drain_and_stop(5.0),
                        server.loop,  # type: ignore[attr-defined]
                    )
                )
                await asyncio.sleep(0.01)
                late = await asyncio.gather(
                    stub.ModelInfer(_request(rows(1)), timeout=5), return_exceptions=True
                )
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
