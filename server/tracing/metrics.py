"""Tracing's own Prometheus families: what was exported, dropped, forced and refused.

Read from the tracer's plain counters at scrape time, like the server's other statistics.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from forestgate.server.tracing.tracer import Tracer


class TraceCollector(Collector):
    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def collect(self) -> Iterator[Metric]:
        tracer, queue = self.tracer, self.tracer.queue
        exported = CounterMetricFamily(
            "forestgate_trace_spans_exported", "spans the OTLP exporter delivered"
        )
        exported.add_metric([], queue.exported)
        dropped = CounterMetricFamily(
            "forestgate_trace_spans_dropped",
            "spans lost: queue_full (the export queue was full), export_failed (the collector "
            "was down, slow or refused them)",
            labels=["reason"],
        )
        dropped.add_metric(["queue_full"], queue.dropped_queue_full)
        dropped.add_metric(["export_failed"], queue.export_failed)
        invalid = CounterMetricFamily(
            "forestgate_trace_context_invalid",
            "calls with a malformed traceparent; each started a new trace",
        )
        invalid.add_metric([], tracer.invalid_context)
        forced = CounterMetricFamily(
            "forestgate_trace_forced",
            "unsampled calls that were slow or failed: exported anyway, or not (rate_limited)",
            labels=["reason", "outcome"],
        )
        for (reason, outcome), count in list(tracer.forced.items()):
            forced.add_metric([reason, outcome], count)
        queued = GaugeMetricFamily(
            "forestgate_trace_queue_records", "trace records waiting for the export thread"
        )
        queued.add_metric([], len(queue))
        yield from (exported, dropped, invalid, forced, queued)
