"""Spans from trace records: what a Jaeger user sees for a request and for an engine batch.

Runs on the export thread. Spans are built with the times the records kept, so building them
after the response costs the request nothing.

A request's trace (attribute names from OpenTelemetry semantic conventions v1.37.0, RPC spans):

    inference.GRPCInferenceService/ModelInfer   SERVER; rpc.*, network.*, forestgate.model.*
      decode                                     bytes to rows
      queue                                      enqueued -> its batch formed
      infer                                      the engine call; links to the batch span
      encode                                     scores to the response message

Each engine batch is a trace of its own, one `engine.batch` span linking every exported
`infer` span it served: a batch serves requests from many traces, and a span has one parent.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import grpc
from opentelemetry.baggage import get_all as baggage_entries
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from forestgate import __version__
from forestgate.payments.pan import mask_pans
from forestgate.server.batcher import BatchStats
from forestgate.server.tracing.record import BatchTrace, RequestTrace

CONVENTIONS = "1.37.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{CONVENTIONS}"
SAMPLED = TraceFlags(TraceFlags.SAMPLED)
# The codes that make a SERVER span an error (semantic conventions, gRPC status); the others
# (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, ...) are the caller's problem.
_SERVER_ERRORS = frozenset(
    code.value[0]
    for code in (
        grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
    )
)  # fmt: skip
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
_BAGGAGE = W3CBaggagePropagator()


class SpanFactory:
    """Turns records into spans of one resource (a SpanBuilder for the span queue)."""

    def __init__(self, resource: Resource, server_address: str, server_port: int) -> None:
        self._resource = resource
        self._scope = InstrumentationScope("forestgate.server", __version__, SCHEMA_URL)
        self._server = {"server.address": server_address, "server.port": server_port}

    def __call__(
        self, records: Sequence[RequestTrace | BatchTrace], offset_ns: int
    ) -> list[ReadableSpan]:
        spans: list[ReadableSpan] = []
        for record in records:
            if isinstance(record, BatchTrace):
                spans.append(self._batch(record, offset_ns))
            else:
                spans.extend(self._request(record, offset_ns))
        return spans

    def _span(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        times: tuple[int, int],
        attributes: Mapping[str, object],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        links: Sequence[Link] = (),
        status: Status | None = None,
    ) -> ReadableSpan:
        return ReadableSpan(
            name, context, parent, self._resource, attributes,  # type: ignore[arg-type]
            links=links, kind=kind, status=status or Status(StatusCode.UNSET),
            start_time=times[0], end_time=times[1], instrumentation_scope=self._scope,
        )  # fmt: skip

    def _request(self, record: RequestTrace, offset_ns: int) -> list[ReadableSpan]:
        parent: SpanContext | None = record.parent
        links: tuple[Link, ...] = ()
        if record.parent is not None and record.parent.trace_id != record.trace_id:
            # Exported although the caller did not sample: a new trace that links the caller.
            parent, links = None, (Link(record.parent, {"forestgate.link": "caller, not sampled"}),)
        # The caller's tracestate belongs to the caller's trace, not to a new one.
        state = None
        if record.tracestate and parent is not None:
            state = TraceState.from_header([record.tracestate])
        server = SpanContext(record.trace_id, record.span_id, False, SAMPLED, state)
        status = None
        if record.code in _SERVER_ERRORS:
            status = Status(StatusCode.ERROR, _CODE_NAMES.get(record.code, str(record.code)))
        spans = [
            self._span(
                record.method, server, parent, _wall(record.started_ns, record.end_ns, offset_ns),
                self._server_attributes(record), kind=SpanKind.SERVER, links=links, status=status,
            )
        ]  # fmt: skip

        def child(
            name: str,
            start: int,
            end: int,
            attributes: Mapping[str, object],
            *,
            span_id: int = 0,
            links: Sequence[Link] = (),
        ) -> None:
            context = SpanContext(record.trace_id, span_id or _span_id(), False, SAMPLED, state)
            times = _wall(start, end, offset_ns)
            spans.append(self._span(name, context, server, times, attributes, links=links))

        if record.decoded_ns:
            rows = {"forestgate.request.rows": record.rows}
            child("decode", record.started_ns, record.decoded_ns, rows)
        for (batch, wait_ns), infer_id in zip(record.batches, record.infer_span_ids, strict=True):
            formed = batch.stats.formed_ns
            child("queue", formed - wait_ns, formed, {"forestgate.queue_wait_us": wait_ns / 1e3})
            batch_context = SpanContext(batch.trace_id, batch.span_id, False, SAMPLED)
            child(
                "infer", formed, _engine_done(batch.stats), _batch_ref(batch), span_id=infer_id,
                links=(Link(batch_context, {"forestgate.link": "batch"}),),
            )  # fmt: skip
        if record.encoded_ns:
            child("encode", record.result_ns, record.encoded_ns, {})
        return spans

    def _server_attributes(self, record: RequestTrace) -> dict[str, object]:
        service, _, method = record.method.partition("/")
        attributes: dict[str, object] = {
            "rpc.system": "grpc", "rpc.service": service, "rpc.method": method,
            "rpc.grpc.status_code": record.code, "network.transport": "tcp", **self._server,
        }  # fmt: skip
        attributes.update(_peer(record.peer))
        if record.model:
            attributes["forestgate.model.name"] = record.model
        if record.version:
            attributes["forestgate.model.version"] = record.version
        if record.forced:
            attributes["forestgate.trace.forced"] = record.forced
        if record.baggage:
            # Masked before parsing too: the parser logs entries it rejects, verbatim.
            header = mask_pans(record.baggage)
            for key, value in baggage_entries(_BAGGAGE.extract({"baggage": header})).items():
                attributes[f"baggage.{key}"] = mask_pans(str(value))
        return attributes

    def _batch(self, batch: BatchTrace, offset_ns: int) -> ReadableSpan:
        context = SpanContext(batch.trace_id, batch.span_id, False, SAMPLED)
        links = [
            Link(SpanContext(trace_id, span_id, False, SAMPLED), {"forestgate.link": "request"})
            for trace_id, span_id in batch.links
        ]
        stats, waits = batch.stats, batch.stats.queue_wait_ns
        attributes: dict[str, object] = {
            "forestgate.model.name": batch.model,
            "forestgate.model.version": batch.version,
            **_batch_ref(batch),
            "forestgate.batch.queue_wait_max_us": max(waits, default=0) / 1e3,
            "forestgate.batch.queue_wait_mean_us": sum(waits) / 1e3 / max(len(waits), 1),
            "forestgate.batch.input_us": stats.input_ns / 1e3,
            "forestgate.batch.engine_us": stats.compute_ns / 1e3,
        }
        status = None
        if stats.error is not None:
            error = type(stats.error).__name__
            attributes["error.type"] = error
            status = Status(StatusCode.ERROR, error)
        times = _wall(stats.formed_ns, _engine_done(stats), offset_ns)
        return self._span(
            "engine.batch", context, None, times, attributes, links=links, status=status
        )


def _batch_ref(batch: BatchTrace) -> dict[str, object]:
    """What a request's `infer` span and the batch span both say, so a tag search finds both."""
    return {
        "forestgate.batch.id": f"{batch.span_id:016x}",
        "forestgate.batch.rows": batch.stats.rows,
        "forestgate.batch.requests": batch.stats.requests,
    }


def _engine_done(stats: BatchStats) -> int:
    """When the engine answered: the batch formed, its rows were copied, the engine ran."""
    return stats.formed_ns + stats.input_ns + stats.compute_ns


def _peer(peer: str) -> dict[str, object]:
    """gRPC's peer string, e.g. ipv4:127.0.0.1:5555 or ipv6:[::1]:5555, as network.peer.*."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return {}
    address, _, port = rest.rpartition(":")
    if not port.isdigit():
        return {}
    return {
        "network.type": kind,
        "network.peer.address": address.strip("[]"),
        "network.peer.port": int(port),
    }


def _wall(start_ns: int, end_ns: int, offset_ns: int) -> tuple[int, int]:
    return start_ns + offset_ns, max(end_ns, start_ns) + offset_ns


def _span_id() -> int:
    return random.getrandbits(64) or 1
