"""Metrics: the server's Prometheus instruments, on a registry of their own.

Histogram buckets are in seconds and start at 25 us, because the whole point of the server is
sub-millisecond latency; a default client bucket layout (5 ms and up) would hide everything.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from forestgate.server.batcher import BatchStats

LATENCY_BUCKETS_S = (
    25e-6, 50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3, 1.5e-3, 2e-3, 3e-3, 5e-3,
    10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServerMetrics:
    """All instruments, created on an injected registry so tests get a clean one."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "forestgate_requests", "RPCs handled, by method and gRPC status code",
            ["method", "code"], registry=r,
        )  # fmt: skip
        self.request_latency = Histogram(
            "forestgate_request_latency_seconds", "RPC handling time inside the server",
            ["method"], buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "forestgate_queue_wait_seconds", "time from enqueue to the start of its batch",
            ["model"], buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.compute = Histogram(
            "forestgate_compute_seconds", "engine time per batch",
            ["model"], buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "forestgate_batch_rows", "rows per engine call",
            ["model"], buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_rows = Gauge(
            "forestgate_queue_rows", "rows waiting in the model's queue", ["model"], registry=r
        )
        self.rejected = Counter(
            "forestgate_rejected", "requests refused by a batcher, by reason",
            ["model", "reason"], registry=r,
        )  # fmt: skip
        self.models_loaded = Gauge(
            "forestgate_model_loaded", "1 for each model version that is loaded and ready",
            ["model", "version"], registry=r,
        )  # fmt: skip

    def observer(self, model: str) -> BatchMetrics:
        """The batcher observer that feeds this model's histograms."""
        return BatchMetrics(self, model)

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics HTTP endpoint in a daemon thread; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)


class BatchMetrics:
    """A server.batcher.BatchObserver writing one model's batch statistics to Prometheus."""

    def __init__(self, metrics: ServerMetrics, model: str) -> None:
        self._queue_wait = metrics.queue_wait.labels(model)
        self._compute = metrics.compute.labels(model)
        self._batch_rows = metrics.batch_rows.labels(model)
        self._rejected = metrics.rejected
        self._model = model

    def on_batch(self, batch: BatchStats) -> None:
        self._batch_rows.observe(batch.rows)
        self._compute.observe(batch.compute_ns / 1e9)
        for wait_ns in batch.queue_wait_ns:
            self._queue_wait.observe(wait_ns / 1e9)

    def on_reject(self, reason: str, context: object) -> None:
        self._rejected.labels(self._model, reason).inc()
