"""The span queue: a bounded queue of trace records and the thread that exports them.

It plays the part of OpenTelemetry's BatchSpanProcessor, with the same settings
(OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_EXPORT_BATCH_SIZE), for two
reasons the SDK's processor cannot serve:
- it takes trace records, not spans, and builds the spans on its own thread, so that even at
  100% sampling the event loop does no more than append to a deque;
- it counts what it loses, by reason, for Prometheus: records refused because the queue is
  full, and spans the exporter failed to deliver (a collector that is down or slow).

The loop only ever appends; a full queue drops the new record and counts it. Export never
blocks serving: a slow collector fills the queue, and the queue drops.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from forestgate.server.tracing.record import BatchTrace, RequestTrace

log = logging.getLogger(__name__)

Record = RequestTrace | BatchTrace
SpanBuilder = Callable[[Sequence[Record], int], list[ReadableSpan]]


class SpanQueue:
    """Records in, spans out to `exporter`, from a daemon thread started at construction."""

    def __init__(
        self,
        exporter: SpanExporter,
        build: SpanBuilder,
        *,
        max_queue: int = 2048,
        max_export_batch: int = 512,
        schedule_delay_s: float = 5.0,
    ) -> None:
        self._exporter = exporter
        self._build = build
        self._max_queue = max_queue
        self._max_export_batch = max_export_batch
        self._schedule_delay_s = schedule_delay_s
        self._records: collections.deque[Record] = collections.deque()
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._stopping = False
        # Each counter has one writer: the loop drops, the export thread exports and fails.
        self.dropped_queue_full = 0  # spans
        self.exported = 0
        self.export_failed = 0
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="forestgate-span-export")
        self._thread.daemon = True
        self._thread.start()

    def __len__(self) -> int:
        return len(self._records)

    def put(self, record: Record) -> None:
        """Queue a record, or drop and count it when the queue is full. Never blocks."""
        if len(self._records) >= self._max_queue:
            self.dropped_queue_full += span_count(record)
            return
        self._records.append(record)
        if len(self._records) >= self._max_export_batch and not self._wake.is_set():
            self._wake.set()

    def flush(self) -> None:
        """Export everything queued now, on the caller's thread (tests and shutdown)."""
        self._export_queued()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Export what is queued (within `timeout_s`), then stop the thread and the exporter."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)
        self._exporter.shutdown()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._schedule_delay_s)
            self._wake.clear()
            self._export_queued()
        self._export_queued()

    def _export_queued(self) -> None:
        with self._export_lock:
            while self._records:
                chunk: list[Record] = []
                while self._records and len(chunk) < self._max_export_batch:
                    chunk.append(self._records.popleft())
                self._export(chunk)

    def _export(self, records: list[Record]) -> None:
        # Spans carry wall-clock times; records carry monotonic ones.
        offset_ns = time.time_ns() - time.monotonic_ns()
        spans: list[ReadableSpan] = []
        try:
            spans = self._build(records, offset_ns)
            result = self._exporter.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
            if not self._warned:
                self._warned = True
                log.exception("span export failed; later failures are only counted")
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
            return
        self.export_failed += len(spans) or sum(map(span_count, records))
        if not self._warned:
            self._warned = True
            log.warning(
                "span export failed (collector down or slow?); spans are dropped and counted in "
                "forestgate_trace_spans_dropped_total"
            )


def span_count(record: Record) -> int:
    """How many spans a record becomes (server/tracing/spans.py)."""
    if isinstance(record, BatchTrace):
        return 1
    steps = (record.decoded_ns > 0) + (record.encoded_ns > 0)
    return 1 + steps + 2 * len(record.batches)
