"""Trace records: the plain timestamps a request and an engine batch leave behind for tracing.

Every traced RPC gets a `RequestTrace`; every engine batch that served one gets a `BatchTrace`.
They hold monotonic clock readings and a few ids, nothing else, so recording costs a handful of
attribute writes. OpenTelemetry spans are built from them later, on the export thread, and
only for the records that are exported (sampled, slow or failed): see server/tracing/spans.py.
"""

from __future__ import annotations

from contextvars import ContextVar

from opentelemetry.trace import SpanContext

from forestgate.server.batcher import BatchStats

# The RPC being handled by the current task: grpc.aio runs each RPC in a task of its own, so
# this is per call. JSON log lines written inside a request read their trace ids from it.
CURRENT: ContextVar[RequestTrace | None] = ContextVar("forestgate_request_trace", default=None)


class BatchTrace:
    """One engine call, as the trace of any request it served needs it: its statistics, and
    what linking it to its requests takes."""

    __slots__ = ("links", "model", "pending", "span_id", "stats", "trace_id", "version")

    def __init__(self, model: str, version: str, stats: BatchStats) -> None:
        self.model = model
        self.version = version
        self.stats = stats  # rows, requests, waits, times and error, as the batcher reported
        # Recorded requests of this batch still in progress; the batch span is built when the
        # last one finishes, so that it can link every exported request.
        self.pending = 0
        self.links: list[tuple[int, int]] = []  # (trace id, span id) of exported `infer` spans
        self.trace_id = 0  # 0 until a request of the batch is exported
        self.span_id = 0


class RequestTrace:
    """One RPC: ids decided at its start, clock readings stamped along the way.

    Most calls are neither sampled nor slow, and only their ids, start and status are ever
    read: every other field keeps its class-level default until a step stamps it, so creating
    a record sets six attributes (no slots, no lists, measured on the hot path).
    """

    tracestate = ""  # raw headers, parsed only if the record is exported
    baggage = ""
    recording = False  # whether steps and batches are stamped (server/tracing/tracer.py)
    decoded_ns = 0  # 0: the step did not happen
    result_ns = 0
    encoded_ns = 0
    end_ns = 0
    code = 0  # gRPC status code number
    model = ""
    version = ""
    rows = 0
    peer = ""
    forced = ""  # why an unsampled request is exported anyway: "slow" or "error"
    batches: tuple[tuple[BatchTrace, int], ...] = ()  # (batch, queue wait ns), usually one
    infer_span_ids: tuple[int, ...] = ()  # per batch, set when the record is exported

    def __init__(
        self,
        method: str,
        started_ns: int,
        *,
        trace_id: int,
        span_id: int,
        parent: SpanContext | None,
        sampled: bool,
    ) -> None:
        self.method = method  # full name, e.g. inference.GRPCInferenceService/ModelInfer
        self.started_ns = started_ns
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent = parent  # the caller's span, from the traceparent header
        self.sampled = sampled  # the head-sampling decision
