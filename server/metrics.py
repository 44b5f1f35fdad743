"""Metrics: the server's Prometheus instruments, on a registry of their own.

The hot path never touches prometheus_client. A call or a batch adds to plain Python counters
and bucket lists (a dict lookup and an increment or two), and a collector turns them into
Prometheus families when /metrics is scraped. prometheus_client's own `labels().inc()` and
`observe()` take a lock and a label lookup each, which showed in profiles of the request path
(bench/results/server.md).

Histogram buckets are in seconds and start at 25 us, because the whole point of the server is
sub-millisecond latency; a default client bucket layout (5 ms and up) would hide everything.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from forestgate.server.batcher import BatchStats, RejectReason
from forestgate.server.statistics import VersionStatistics

LATENCY_BUCKETS_S = (
    25e-6, 50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3, 1.5e-3, 2e-3, 3e-3, 5e-3,
    10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Histogram:
    """Bucket counts and a sum, in plain Python; read only by the collector."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @classmethod
    def merged(cls, histograms: Sequence[Histogram]) -> Histogram:
        """One histogram of several with the same bounds (a model's versions, for Prometheus)."""
        merged = cls(histograms[0].bounds)
        for histogram in histograms:
            merged.counts = [a + b for a, b in zip(merged.counts, histogram.counts, strict=True)]
            merged.total += histogram.total
        return merged

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, as Prometheus wants them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class MethodStats:
    """One RPC method: calls by status code and the handling-time histogram."""

    __slots__ = ("codes", "latency")

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.latency = Histogram(LATENCY_BUCKETS_S)

    def record(self, code: str, seconds: float) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1
        self.latency.observe(seconds)


class ModelStats:
    """One model version's batches and refusals, fed by its batcher (a BatchObserver): the
    Prometheus histograms, and Triton's statistics (server/statistics.py)."""

    __slots__ = ("batch_rows", "compute", "queue_wait", "rejected", "triton")

    def __init__(self) -> None:
        self.queue_wait = Histogram(LATENCY_BUCKETS_S)
        self.compute = Histogram(LATENCY_BUCKETS_S)
        self.batch_rows = Histogram(BATCH_BUCKETS)
        self.rejected: dict[str, int] = {}
        self.triton = VersionStatistics()

    def on_batch(self, batch: BatchStats) -> None:
        self.batch_rows.observe(batch.rows)
        self.compute.observe(batch.compute_ns / 1e9)
        for wait_ns in batch.queue_wait_ns:
            self.queue_wait.observe(wait_ns / 1e9)
        self.triton.on_batch(batch)

    def on_reject(self, reason: RejectReason, context: object) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.triton.on_reject(reason, context)


class ServerMetrics:
    """All instruments, on an injected registry so tests get a clean one."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.methods: dict[str, MethodStats] = {}
        self.models: dict[tuple[str, str], ModelStats] = {}  # by (name, version)
        self.queue_rows: dict[str, Callable[[], int]] = {}
        # gRPC core's own counts of calls (server/transport.py), read at scrape time.
        self.transport_calls: Callable[[], dict[str, int]] | None = None
        # The decision core's count of incumbent answers by reason, read at scrape time.
        self.decision_fallbacks: Callable[[], dict[str, int]] | None = None
        self.registry.register(_StatsCollector(self))
        self.models_loaded = Gauge(
            "forestgate_model_loaded", "1 for each model version that is loaded and ready",
            ["model", "version"], registry=self.registry,
        )  # fmt: skip
        self.models_failed = Gauge(
            "forestgate_model_load_failed",
            "1 for each model version on disk that failed to load (RepositoryIndex says why)",
            ["model", "version"], registry=self.registry,
        )  # fmt: skip

    def method(self, name: str) -> MethodStats:
        stats = self.methods.get(name)
        if stats is None:
            stats = self.methods[name] = MethodStats()
        return stats

    def observer(self, model: str, version: str) -> ModelStats:
        """The batcher observer that feeds one model version's statistics. Prometheus sums a
        model's versions; Triton's ModelStatistics reports each one."""
        stats = self.models.get((model, version))
        if stats is None:
            stats = self.models[(model, version)] = ModelStats()
        return stats

    def statistics(self, model: str, version: str) -> VersionStatistics:
        """One model version's figures in Triton's terms (zero for a version never served)."""
        return self.observer(model, version).triton

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics HTTP endpoint in a daemon thread; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)


class _StatsCollector(Collector):
    """Builds the families from the plain counters at scrape time."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        requests = CounterMetricFamily(
            "forestgate_requests", "RPCs handled, by method and gRPC status code",
            labels=["method", "code"],
        )  # fmt: skip
        latency = HistogramMetricFamily(
            "forestgate_request_latency_seconds", "RPC handling time inside the server",
            labels=["method"],
        )  # fmt: skip
        for method, stats in list(m.methods.items()):
            for code, count in list(stats.codes.items()):
                requests.add_metric([method, code], count)
            latency.add_metric([method], stats.latency.buckets(), stats.latency.total)
        yield requests
        yield latency
        yield from _model_families(m)
        if m.transport_calls is not None:
            yield _transport_family(m.transport_calls())
        if m.decision_fallbacks is not None:
            yield _fallback_family(m.decision_fallbacks())


def _transport_family(counts: dict[str, int]) -> Metric:
    family = CounterMetricFamily(
        "forestgate_transport_calls",
        "calls gRPC core counted for this server: started, succeeded, failed; started minus "
        "the other two is calls in progress plus calls core refused (--max-pending-calls)",
        labels=["outcome"],
    )
    for outcome, count in counts.items():
        family.add_metric([outcome], count)
    return family


def _fallback_family(counts: dict[str, int]) -> Metric:
    family = CounterMetricFamily(
        "forestgate_decision_fallbacks",
        "Score decisions the incumbent rules answered because the models could not, by reason "
        "(deadline, overloaded, model_not_loaded, unavailable, features)",
        labels=["reason"],
    )
    for reason, count in list(counts.items()):
        family.add_metric([reason], count)
    return family


def _model_families(m: ServerMetrics) -> Iterator[Metric]:
    families = {
        "queue_wait": HistogramMetricFamily(
            "forestgate_queue_wait_seconds", "time from enqueue to the start of its batch",
            labels=["model"],
        ),
        "compute": HistogramMetricFamily(
            "forestgate_compute_seconds", "engine time per batch", labels=["model"]
        ),
        "batch_rows": HistogramMetricFamily(
            "forestgate_batch_rows", "rows per engine call", labels=["model"]
        ),
    }  # fmt: skip
    rejected = CounterMetricFamily(
        "forestgate_rejected",
        "requests refused by a batcher, or by the input check (invalid), by reason",
        labels=["model", "reason"],
    )
    queue_rows = GaugeMetricFamily(
        "forestgate_queue_rows", "rows waiting in the model's queue", labels=["model"]
    )
    versions: dict[str, list[ModelStats]] = {}
    for (model, _version), stats in list(m.models.items()):
        versions.setdefault(model, []).append(stats)
    for model, each in versions.items():
        for key, family in families.items():
            histogram = Histogram.merged([getattr(stats, key) for stats in each])
            family.add_metric([model], histogram.buckets(), histogram.total)
        reasons: dict[str, int] = {}
        for stats in each:
            for reason, count in list(stats.rejected.items()):
                reasons[reason] = reasons.get(reason, 0) + count
        for reason, count in reasons.items():
            rejected.add_metric([model, reason], count)
    for model, read in list(m.queue_rows.items()):
        queue_rows.add_metric([model], read())
    yield from families.values()
    yield rejected
    yield queue_rows
