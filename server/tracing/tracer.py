"""The tracer: what tracing does on the event loop, per call and per engine batch.

Per call it reads the caller's trace context, makes the head-sampling decision and keeps a
`RequestTrace` of clock readings. When the call ends it decides whether the record is
exported: when it was sampled, or, whatever the sampling said, when it failed or was slower
than the slow threshold (at most `forced_per_s` of those a second, so an overload that makes
every call slow cannot make every call exported). An exported record is queued for the export
thread; an unexported one is simply dropped. No OpenTelemetry span object exists on the loop.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from forestgate.server.batcher import BatchObserver, BatchStats, RejectReason
from forestgate.server.tracing.config import HeadSampler
from forestgate.server.tracing.context import incoming
from forestgate.server.tracing.export import SpanQueue
from forestgate.server.tracing.record import BatchTrace, RequestTrace

_bits = random.getrandbits  # what the SDK's RandomIdGenerator uses


class Tracer:
    """Begins and finishes request records, and attaches engine batches to them."""

    def __init__(
        self,
        queue: SpanQueue,
        *,
        sampler: HeadSampler,
        slow_ns: int = 0,
        forced_per_s: int = 100,
    ) -> None:
        self.queue = queue
        self._sampler = sampler
        self._slow_ns = slow_ns  # 0: no slow threshold
        self._forced_per_s = forced_per_s  # 0: no limit
        self._tokens = float(forced_per_s)
        self._tokens_at_ns = 0
        # Plain counters, read by the metrics collector (server/tracing/metrics.py).
        self.invalid_context = 0
        self.forced: dict[tuple[str, str], int] = {}  # (reason, exported|rate_limited) -> n

    def begin(
        self, method: str, metadata: Iterable[tuple[str, str | bytes]] | None, started_ns: int
    ) -> RequestTrace:
        """A record for a call that started at `started_ns`, with its sampling decision."""
        parent, malformed, tracestate, baggage = incoming(metadata)
        if malformed:
            self.invalid_context += 1
        trace_id = (_bits(128) or 1) if parent is None else parent.trace_id
        sampled = self._sampler.sampled(parent, trace_id)
        record = RequestTrace(
            method, started_ns, trace_id=trace_id, span_id=_bits(64) or 1, parent=parent,
            sampled=sampled,
        )  # fmt: skip
        # An unsampled call is exported only if it fails, or is slow; without a slow threshold
        # its steps and batch are never needed, so nothing is recorded for them.
        if sampled or self._slow_ns:
            record.recording = True
        if tracestate:
            record.tracestate = tracestate
        if baggage:
            record.baggage = baggage
        return record

    def finish(self, record: RequestTrace, code: int, end_ns: int, peer: Callable[[], str]) -> None:
        """Close the record: export it if it must be, and release its batches."""
        if not (record.recording or code):
            return  # most calls: not sampled, no slow threshold, no failure, no batch held
        record.code = code
        record.end_ns = end_ns
        exported = record.sampled or self._force(record)
        if exported:
            record.peer = peer()
            record.infer_span_ids = tuple(_bits(64) or 1 for _ in record.batches)
        for index, (batch, _) in enumerate(record.batches):
            if exported:
                if not batch.trace_id:
                    batch.trace_id = _bits(128) or 1
                    batch.span_id = _bits(64) or 1
                batch.links.append((record.trace_id, record.infer_span_ids[index]))
            batch.pending -= 1
        if exported:
            self.queue.put(record)
        for batch, _ in record.batches:
            if batch.pending == 0 and batch.links and batch.trace_id:
                batch.pending = -1  # queued once, even if it shows up twice in this record
                self.queue.put(batch)

    def _force(self, record: RequestTrace) -> bool:
        """Export an unsampled record that failed or was slow, within the rate limit."""
        if record.code:
            reason = "error"
        elif self._slow_ns and record.end_ns - record.started_ns > self._slow_ns:
            reason = "slow"
        else:
            return False
        allowed = self._take_token(record.end_ns)
        key = (reason, "exported" if allowed else "rate_limited")
        self.forced[key] = self.forced.get(key, 0) + 1
        if not allowed:
            return False
        record.forced = reason
        if record.parent is not None:
            # The caller's trace is not recorded, so this one starts a trace of its own and
            # links back to the caller's span (server/tracing/spans.py).
            record.trace_id = _bits(128) or 1
        return True

    def _take_token(self, now_ns: int) -> bool:
        """A token bucket of `forced_per_s` a second, holding one second's worth."""
        rate = self._forced_per_s
        if not rate:
            return True
        elapsed_s = (now_ns - self._tokens_at_ns) / 1e9
        self._tokens = min(float(rate), self._tokens + elapsed_s * rate)
        self._tokens_at_ns = now_ns
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def observer(self, inner: BatchObserver, model: str, version: str) -> BatchObserver:
        """Wrap a model version's batch observer so its batches reach the request records."""
        return _BatchTracer(inner, model, version)


class _BatchTracer:
    """A BatchObserver: forwards to the statistics, then attaches the batch to its requests."""

    __slots__ = ("inner", "model", "version")

    def __init__(self, inner: BatchObserver, model: str, version: str) -> None:
        self.inner = inner
        self.model = model
        self.version = version

    def on_batch(self, batch: BatchStats) -> None:
        self.inner.on_batch(batch)
        if not any(batch.contexts):
            return  # no recorded call in it: unsampled calls hand the batcher no record
        traced: BatchTrace | None = None
        for context, wait_ns in zip(batch.contexts, batch.queue_wait_ns, strict=True):
            if isinstance(context, RequestTrace) and context.recording:
                if traced is None:
                    traced = BatchTrace(self.model, self.version, batch)
                traced.pending += 1
                context.batches += ((traced, wait_ns),)

    def on_reject(self, reason: RejectReason, context: object) -> None:
        self.inner.on_reject(reason, context)
