"""Load shedding and deadlines on a live server: RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, and a
drain that completes what was accepted. Nothing here is timed: outcomes, not speeds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
import numpy as np
from prometheus_client import generate_latest

from forestgate.engine.model import CompiledModel
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc
from forestgate.server.shedding import QueueTimeShedder
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
    # The RPC bound (by default as many as max_queue_rows) is set apart, so the queue is the
    # only limit that refuses: which bound trips first would otherwise depend on scheduling.
    settings = {
        "max_batch_rows": 4, "max_queue_rows": 4, "max_concurrent_rpcs": 1000,
        "execution": "thread",
    }  # fmt: skip
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


def test_rpcs_beyond_the_bound_are_resource_exhausted_and_counted(serve_with, model_repository):
    """Three calls hold the engine and the queue; every other one is refused by the RPC bound
    before it is parsed, and the refusals are counted like any other status."""
    model = CompiledModel.open(model_repository / "fraud" / "2")
    gate = Gate()
    settings = {"max_concurrent_rpcs": 3, "max_batch_rows": 1, "max_queue_rows": 64}
    with serve_with(model_repository, gate.wrap, **settings) as server:
        batches = [rows(1, seed=i) for i in range(10)]

        async def burst() -> list[object]:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                calls = [
                    asyncio.ensure_future(stub.ModelInfer(_request(x), timeout=30)) for x in batches
                ]
                await _until(lambda: sum(c.done() for c in calls) >= 7, "7 refused")
                gate.opened.set()
                return await asyncio.gather(*calls, return_exceptions=True)

        results = asyncio.run(burst())
        stats = server.running.metrics.methods["ModelInfer"]  # type: ignore[attr-defined]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 7
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert "3 ModelInfer calls in progress, max_concurrent_rpcs=3" in refused[0].details()
    assert stats.codes == {"RESOURCE_EXHAUSTED": 7, "OK": 3}
    for x, result in zip(batches, results, strict=True):
        if isinstance(result, pb.ModelInferResponse):
            got = np.frombuffer(result.raw_output_contents[0], dtype="<f4")
            np.testing.assert_array_equal(got, model.predict(x))


def test_calls_beyond_the_pending_bound_are_refused_by_grpc_core_and_counted(
    serve_with, model_repository
):
    """The first call holds the event loop inside the engine (inline execution, held at the
    gate), so the next ones pile up in gRPC core, where the server cannot take them. Beyond
    max_pending_calls core refuses them at once; the rest are answered right once the loop
    runs again, and the transport counters show the refusals."""
    model = CompiledModel.open(model_repository / "fraud" / "2")
    gate = Gate()
    settings = {"execution": "inline", "max_pending_calls": 2}
    with serve_with(model_repository, gate.wrap, **settings) as server:
        batches = [rows(1, seed=i) for i in range(12)]

        async def burst() -> list[object]:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                first = asyncio.ensure_future(stub.ModelInfer(_request(batches[0]), timeout=30))
                await gate.busy()  # the loop is blocked from here until the gate opens
                rest = [
                    asyncio.ensure_future(stub.ModelInfer(_request(x), timeout=30))
                    for x in batches[1:]
                ]
                await _until(lambda: sum(c.done() for c in rest) >= 5, "5 refused by gRPC core")
                gate.opened.set()
                return await asyncio.gather(first, *rest, return_exceptions=True)

        results = asyncio.run(burst())
        counts = server.running.metrics.transport_calls()  # type: ignore[attr-defined]
        text = generate_latest(server.running.metrics.registry).decode()  # type: ignore[attr-defined]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) >= 5
    assert {r.code() for r in refused} == {grpc.StatusCode.CANCELLED}
    for x, result in zip(batches, results, strict=True):
        if isinstance(result, pb.ModelInferResponse):
            got = np.frombuffer(result.raw_output_contents[0], dtype="<f4")
            np.testing.assert_array_equal(got, model.predict(x))
    assert counts["started"] == len(batches)
    assert counts["started"] - counts["succeeded"] - counts["failed"] == len(refused)
    assert (
        f'forestgate_transport_calls_total{{outcome="succeeded"}} {len(batches) - len(refused)}'
        in text
    )


def test_a_10000_row_request_gets_every_row_while_small_requests_keep_flowing(
    serve_with, model_repository
):
    """The large request's chunks share the engine with the 1-row calls: while it is held at
    the gate on its first chunk, small calls queue; once released, they are answered between
    its chunks, and every one of its 10,000 rows is the model's own score."""
    model = CompiledModel.open(model_repository / "fraud" / "2")
    gate = Gate()
    big = rows(10_000, seed=7)
    small = [rows(1, seed=100 + i) for i in range(20)]
    with serve_with(model_repository, gate.wrap, max_batch_rows=256) as server:

        async def scenario() -> tuple[object, list[object]]:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                large = asyncio.ensure_future(stub.ModelInfer(_request(big), timeout=60))
                await _until(lambda: gate.rows_in_engine > 0, "the first chunk is in the engine")
                calls = [asyncio.ensure_future(stub.ModelInfer(_request(x))) for x in small]
                batcher = server.running.repository.get("fraud").batcher  # type: ignore[attr-defined]
                await _until(lambda: batcher.queue_rows == 10_000 + 20, "all queued")
                gate.opened.set()
                return await large, await asyncio.gather(*calls)

        large, answers = asyncio.run(scenario())
    got = np.frombuffer(large.raw_output_contents[0], dtype="<f4")  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got, model.predict(big))
    for x, answer in zip(small, answers, strict=True):
        np.testing.assert_array_equal(
            np.frombuffer(answer.raw_output_contents[0], dtype="<f4"), model.predict(x)
        )
    sizes = gate.sizes()
    assert sizes[0] == 256 and sum(sizes) == 10_000 + 20
    # The small calls formed a batch right after the held chunk, not after all 40 chunks.
    assert sizes[1] == 20


# --- QueueTimeShedder on its own, on a fake clock ------------------------------------------------

MS = 1_000_000


def shedder() -> QueueTimeShedder:
    return QueueTimeShedder(target_ns=2 * MS, interval_ns=100 * MS, clock=lambda: 0)


def test_a_burst_that_drains_within_the_interval_is_never_shed() -> None:
    codel = shedder()
    waits = [5 * MS, 8 * MS, 3 * MS, 1 * MS]  # above target, then below before 100 ms passed
    assert [codel.observe(w, now) for w, now in zip(waits, (0, 40, 80, 99), strict=True)] == [
        False
    ] * 4
    assert not codel.shedding and codel.episodes == 0


def test_queue_time_above_target_for_a_whole_interval_starts_shedding() -> None:
    codel = shedder()
    assert codel.observe(3 * MS, 0) is False  # the interval starts
    assert codel.observe(3 * MS, 99 * MS) is False
    assert codel.observe(3 * MS, 100 * MS) is True  # above target for the whole interval
    assert codel.shedding and codel.episodes == 1
    assert codel.observe(3 * MS, 150 * MS) is True


def test_one_wait_under_target_ends_an_episode_and_the_next_needs_a_full_interval() -> None:
    codel = shedder()
    codel.observe(3 * MS, 0)
    codel.observe(3 * MS, 100 * MS)
    assert codel.observe(1 * MS, 120 * MS) is False
    assert not codel.shedding
    assert codel.observe(3 * MS, 130 * MS) is False  # a new interval starts here
    assert codel.observe(3 * MS, 229 * MS) is False
    assert codel.observe(3 * MS, 230 * MS) is True
    assert codel.episodes == 2


def test_a_wait_exactly_at_target_counts_as_above() -> None:
    codel = shedder()
    codel.observe(2 * MS, 0)
    assert codel.observe(2 * MS, 100 * MS) is True
