"""The tracing pipeline, assembled: resource, OTLP exporter, span queue and tracer.

The exporter is OpenTelemetry's own OTLP exporter, over gRPC or HTTP/protobuf. It is created
in each worker process after the fork (gRPC channels do not survive a fork), and each worker
names itself with a `service.instance.id` of its own.
"""

from __future__ import annotations

import os
import uuid

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter

from forestgate import __version__
from forestgate.server.tracing.config import TraceConfig
from forestgate.server.tracing.export import SpanQueue
from forestgate.server.tracing.spans import SCHEMA_URL, SpanFactory
from forestgate.server.tracing.tracer import Tracer

SERVICE_NAME = "forestgate"


def build_tracer(
    config: TraceConfig, server_address: str, server_port: int, workers: int
) -> Tracer:
    """A running tracer (its export thread started) for an enabled `config`."""
    factory = SpanFactory(resource(workers), server_address, server_port)
    queue = SpanQueue(
        exporter(config), factory, max_queue=config.max_queue,
        max_export_batch=config.max_export_batch, schedule_delay_s=config.schedule_delay_s,
    )  # fmt: skip
    return Tracer(
        queue, sampler=config.sampler, slow_ns=config.slow_ns, forced_per_s=config.forced_per_s
    )


def resource(workers: int) -> Resource:
    """service.name forestgate unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say
    otherwise; a service.instance.id per process, so each worker is told apart."""
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES from os.environ.
    detected = dict(Resource.create().attributes)
    if str(detected.get("service.name", "")).startswith("unknown_service"):
        detected["service.name"] = SERVICE_NAME
    pid = os.getpid()
    instance = detected.get("service.instance.id")
    if instance and workers > 1:
        detected["service.instance.id"] = f"{instance}-{pid}"
    detected.setdefault("service.instance.id", str(uuid.uuid4()))
    detected.setdefault("service.version", __version__)
    detected["process.pid"] = pid
    return Resource(detected, SCHEMA_URL)


def exporter(config: TraceConfig) -> SpanExporter:
    if config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=config.endpoint or None)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    endpoint = config.endpoint
    if endpoint and not endpoint.rstrip("/").endswith("/v1/traces"):
        # The flag is a base URL, like OTEL_EXPORTER_OTLP_ENDPOINT; HTTP adds the signal path.
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return HttpExporter(endpoint=endpoint or None)
