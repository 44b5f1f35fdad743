"""Traces from a live server, received by a real OTLP receiver (tests/otlp.py) on a free port.

The server exports through OpenTelemetry's own OTLP exporters; the tests flush its span queue
(what the export thread does on its schedule) and read what the receiver got.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc
from forestgate.server.cli import JsonFormatter, TraceContextFilter
from tests.otlp import Span, TraceReceiver
from tests.server.conftest import LiveServer, rows
from tests.server.engines import Gate
from tests.server.test_shedding import _request, _until

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
MODEL_INFER = "inference.GRPCInferenceService/ModelInfer"


@pytest.fixture
def traced(serve_with: Any, model_repository: Path, receiver: TraceReceiver) -> Callable[..., Any]:
    """A server exporting to the receiver over OTLP/gRPC: `with traced(**settings) as server`."""
    port = receiver.start_grpc()

    def start(wrap_engine: object = None, **settings: Any) -> Any:
        settings.setdefault("trace_sample_ratio", 1.0)
        return serve_with(
            model_repository, wrap_engine, trace_endpoint=f"http://127.0.0.1:{port}", **settings
        )

    return start


def infer(server: LiveServer, x: np.ndarray, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        return stub.ModelInfer(_request(x), metadata=metadata, timeout=30)


def flush(server: LiveServer, calls: int = 0) -> None:
    """Export what the server queued, once it has finished `calls` ModelInfer calls: a call that
    fails is finished on the server just after its status reaches the client."""
    stats = server.running.metrics.method("ModelInfer")  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while sum(stats.codes.values()) < calls:
        assert time.monotonic() < deadline, f"the server finished {stats.codes}, not {calls}"
        time.sleep(0.005)
    server.running.tracer.queue.flush()  # type: ignore[attr-defined]


def by_name(spans: list[Span], name: str) -> list[Span]:
    return [span for span in spans if span.name == name]


def request_tree(spans: list[Span]) -> tuple[Span, dict[str, list[Span]]]:
    """The one ModelInfer server span, and its children by name."""
    (server,) = by_name(spans, MODEL_INFER)
    children: dict[str, list[Span]] = {}
    for span in spans:
        if span.parent_span_id == server.span_id and span.trace_id == server.trace_id:
            children.setdefault(span.name, []).append(span)
    return server, children


def test_a_request_is_a_server_span_with_its_steps_and_its_batch(traced, receiver):
    with traced() as server:
        infer(server, rows(3))
        flush(server)
    spans = receiver.wait_for(lambda s: len(s) >= 6)
    server_span, children = request_tree(spans)
    assert server_span.kind == "SERVER"
    assert server_span.parent_span_id == ""
    attributes = server_span.attributes
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.service"] == "inference.GRPCInferenceService"
    assert attributes["rpc.method"] == "ModelInfer"
    assert attributes["rpc.grpc.status_code"] == 0
    assert attributes["forestgate.model.name"] == "fraud"
    assert attributes["forestgate.model.version"] == "2"
    assert attributes["network.peer.address"] == "127.0.0.1"
    assert attributes["server.port"] == server.port
    assert sorted(children) == ["decode", "encode", "infer", "queue"]
    for child in (span for group in children.values() for span in group):
        assert server_span.start_ns <= child.start_ns <= child.end_ns <= server_span.end_ns
    (infer_span,) = children["infer"]
    (batch,) = by_name(spans, "engine.batch")
    assert infer_span.links == [(batch.trace_id, batch.span_id, {"forestgate.link": "batch"})]
    assert batch.links == [
        (infer_span.trace_id, infer_span.span_id, {"forestgate.link": "request"})
    ]
    assert batch.trace_id != server_span.trace_id  # a batch is a trace of its own
    assert batch.attributes["forestgate.batch.rows"] == 3
    assert batch.attributes["forestgate.batch.requests"] == 1
    assert batch.attributes["forestgate.batch.id"] == infer_span.attributes["forestgate.batch.id"]
    assert batch.resource["service.name"] == "forestgate"
    assert batch.resource["service.instance.id"]


def test_the_callers_trace_continues_with_its_state_and_baggage(traced, receiver):
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    metadata = (
        ("traceparent", traceparent),
        ("tracestate", "switch=a1"),
        ("baggage", "merchant=m-42,card=4111111111111111,spaced=4111%201111%201111%201111"),
    )
    with traced(trace_sample_ratio=0.0) as server:  # parent-based: the caller's choice rules
        infer(server, rows(1), metadata)
        flush(server)
    server_span, _ = request_tree(receiver.wait_for(lambda s: len(by_name(s, MODEL_INFER)) == 1))
    assert server_span.trace_id == CALLER_TRACE
    assert server_span.parent_span_id == CALLER_SPAN
    assert server_span.trace_state == "switch=a1"
    assert server_span.attributes["baggage.merchant"] == "m-42"
    # Never a card number in a span, even percent-encoded.
    assert server_span.attributes["baggage.card"] == "[masked]"
    assert server_span.attributes["baggage.spaced"] == "[masked]"


def test_a_slow_request_the_caller_did_not_sample_is_a_new_trace_linked_to_the_caller(
    traced, receiver
):
    """No call through gRPC takes under 1 us, so with that threshold every call is slow."""
    not_sampled = (
        ("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"),
        ("tracestate", "switch=a1"),
    )
    with traced(trace_sample_ratio=1.0, trace_slow_us=1) as server:
        infer(server, rows(1), not_sampled)
        flush(server)
    server_span, children = request_tree(receiver.wait_for(lambda s: len(s) >= 6))
    assert server_span.trace_id != CALLER_TRACE
    assert server_span.parent_span_id == ""
    assert server_span.attributes["forestgate.trace.forced"] == "slow"
    assert server_span.trace_state == ""  # the caller's state stays with the caller's trace
    assert server_span.links == [
        (CALLER_TRACE, CALLER_SPAN, {"forestgate.link": "caller, not sampled"})
    ]
    assert "infer" in children


def test_unsampled_fast_requests_export_nothing_and_failed_ones_are_exported(traced, receiver):
    with traced(trace_sample_ratio=0.0) as server:
        infer(server, rows(2))
        with pytest.raises(grpc.RpcError) as bad:
            infer(server, np.zeros((1, 3), dtype=np.float32))  # wrong number of features
        flush(server, calls=2)
        families = _scrape(server)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    spans = receiver.wait_for(lambda s: len(by_name(s, MODEL_INFER)) == 1)
    server_span, children = request_tree(spans)
    invalid_argument = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert server_span.attributes["rpc.grpc.status_code"] == invalid_argument
    assert server_span.attributes["forestgate.trace.forced"] == "error"
    assert server_span.status == 0  # INVALID_ARGUMENT is the caller's error, not the server's
    # Not sampled and no slow threshold: its steps were never stamped, the span says enough.
    assert children == {}
    assert by_name(spans, "engine.batch") == []
    assert families['forestgate_trace_forced_total{outcome="exported",reason="error"}'] == 1


def test_concurrent_requests_in_one_batch_link_to_it_and_it_links_to_each(traced, receiver):
    """The first request is held in the engine; the next two queue and form one batch."""
    gate = Gate()
    with traced(gate.wrap, max_batch_rows=16) as server:
        batcher = server.running.repository.get("fraud").batcher  # type: ignore[attr-defined]

        async def burst() -> None:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                first = asyncio.ensure_future(stub.ModelInfer(_request(rows(1)), timeout=30))
                await gate.busy()
                rest = [
                    asyncio.ensure_future(stub.ModelInfer(_request(rows(2, seed=i)), timeout=30))
                    for i in (1, 2)
                ]
                await _until(lambda: batcher.queue_rows == 4, "both requests are queued")
                gate.opened.set()
                await asyncio.gather(first, *rest)

        asyncio.run(burst())
        flush(server)
    spans = receiver.wait_for(lambda s: len(by_name(s, "engine.batch")) == 2)
    batches = by_name(spans, "engine.batch")
    (shared,) = [b for b in batches if b.attributes["forestgate.batch.requests"] == 2]
    infers = {(s.trace_id, s.span_id): s for s in by_name(spans, "infer")}
    linked = [infers[(trace_id, span_id)] for trace_id, span_id, _ in shared.links]
    assert len(linked) == 2 and len({span.trace_id for span in linked}) == 2
    for span in linked:
        assert span.links[0][:2] == (shared.trace_id, shared.span_id)
    assert shared.attributes["forestgate.batch.rows"] == 4
    assert shared.attributes["forestgate.batch.queue_wait_max_us"] > 0


def test_malformed_traceparent_starts_a_new_trace_and_is_counted(traced, receiver):
    with traced() as server:
        reply = infer(server, rows(1), (("traceparent", "00-not-a-trace-context-01"),))
        flush(server)
        families = _scrape(server)
    assert reply.outputs
    server_span, _ = request_tree(receiver.wait_for(lambda s: len(by_name(s, MODEL_INFER)) == 1))
    assert server_span.parent_span_id == ""
    assert families["forestgate_trace_context_invalid_total"] == 1


def test_probes_health_and_reflection_are_not_traced(traced, receiver):
    with traced() as server:
        with grpc.insecure_channel(server.address) as channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            stub.ServerLive(pb.ServerLiveRequest(), timeout=10)
            stub.ServerReady(pb.ServerReadyRequest(), timeout=10)
            stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10)  # traced: the marker
        flush(server)
    spans = receiver.wait_for(lambda s: len(s) >= 1)
    assert [span.name for span in spans] == ["inference.GRPCInferenceService/ServerMetadata"]


def test_a_log_line_inside_a_request_carries_its_trace_ids(traced, receiver, caplog):
    """An engine that raises makes the server log the failure from inside the call."""

    class Broken:
        def __init__(self, model: Any) -> None:
            self.num_features, self.output_width = model.num_features, model.output_width

        def score(self, rows: np.ndarray, out: np.ndarray) -> None:
            raise RuntimeError("engine broke")

    caplog.handler.addFilter(TraceContextFilter())
    with caplog.at_level(logging.ERROR), traced(Broken) as server:
        with pytest.raises(grpc.RpcError) as failed:
            infer(server, rows(1))
        flush(server, calls=1)
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    server_span, _ = request_tree(receiver.wait_for(lambda s: len(by_name(s, MODEL_INFER)) == 1))
    assert server_span.status == 2  # INTERNAL is the server's error
    (line,) = [json.loads(JsonFormatter().format(r)) for r in caplog.records if "failed" in r.msg]
    assert (line["trace_id"], line["span_id"]) == (server_span.trace_id, server_span.span_id)


def test_collector_down_serving_goes_on_and_the_lost_spans_are_counted(
    serve_with, model_repository, monkeypatch
):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    closed = TraceReceiver()
    port = closed.start_grpc()
    closed.stop()  # nothing listens there any more
    with serve_with(
        model_repository, trace_endpoint=f"http://127.0.0.1:{port}", trace_sample_ratio=1.0
    ) as server:
        replies = [infer(server, rows(1, seed=i)) for i in range(3)]
        flush(server)
        families = _scrape(server)
    assert all(reply.outputs for reply in replies)
    assert families['forestgate_trace_spans_dropped_total{reason="export_failed"}'] >= 3 * 5
    assert families["forestgate_trace_spans_exported_total"] == 0


def test_a_full_export_queue_drops_and_counts(traced, receiver, monkeypatch):
    """The export thread never wakes during the test (a 1 h schedule, a large export batch), so
    the queue holds exactly its 2 records: the request and its batch."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "2")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "3600000")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1000")
    with traced() as server:
        for i in range(3):
            infer(server, rows(1, seed=i))
        families = _scrape(server)
        flush(server)
    assert families['forestgate_trace_spans_dropped_total{reason="queue_full"}'] == 2 * 5 + 2 * 1
    assert len(receiver.wait_for(lambda s: len(s) == 6)) == 6


def test_otlp_over_http_when_asked(serve_with, model_repository, receiver):
    port = receiver.start_http()
    with serve_with(
        model_repository, trace_endpoint=f"http://127.0.0.1:{port}",
        trace_protocol="http/protobuf", trace_sample_ratio=1.0,
    ) as server:  # fmt: skip
        infer(server, rows(1))
        flush(server)
    receiver.wait_for(lambda s: len(by_name(s, MODEL_INFER)) == 1)
    assert set(receiver.http_paths) == {"/v1/traces"}


def _scrape(server: LiveServer) -> dict[str, float]:
    """Sample name with labels -> value, from the server's own registry."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    text = generate_latest(server.running.metrics.registry).decode()  # type: ignore[attr-defined]
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def test_workers_report_their_own_instance_and_sigterm_exports_what_is_queued(serving, receiver):
    """The export thread never wakes by itself (a 1 h schedule), so every span that arrives was
    exported by the drain on SIGTERM. 24 connections reach both workers but with odds of 2^-23
    against (the kernel balances connections by hash)."""
    port = receiver.start_grpc()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_TRACES_SAMPLER": "always_on", "OTEL_BSP_SCHEDULE_DELAY": "3600000",
    }  # fmt: skip
    server = serving("--workers", "2", "--metrics-port", "-1", env=env)
    server.wait_ready(workers=2)
    for i in range(24):
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            stub.ModelInfer(_request(rows(1, seed=i)), timeout=10)
    assert server.stop() == 0
    spans = receiver.wait_for(lambda s: len(by_name(s, MODEL_INFER)) == 24)
    instances = {span.resource["service.instance.id"] for span in spans}
    pids = {span.resource["process.pid"] for span in spans}
    assert len(instances) == 2 and len(pids) == 2
