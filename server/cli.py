"""`forestgate serve`: settings from flags and FORESTGATE_* variables, JSON logs, then serve."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from forestgate.server import settings as settings_module
from forestgate.server.tracing.config import trace_config
from forestgate.server.tracing.record import CURRENT


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a model repository over gRPC (Open Inference Protocol, health, reflection)",
        description=(
            "Load every valid bundle under --model-repository and serve it on one gRPC port: "
            "inference.GRPCInferenceService (Open Inference Protocol / KServe V2), "
            "grpc.health.v1.Health and server reflection (v1 and v1alpha). Prometheus metrics "
            "are served over HTTP on --metrics-port. SIGTERM drains: health NOT_SERVING, new "
            "calls refused with UNAVAILABLE, in-flight calls finish within --grace-period-s, "
            "exit 0. Every setting also reads FORESTGATE_<NAME> (a flag wins). OpenTelemetry "
            "traces go over OTLP once an endpoint is set (--trace-endpoint or "
            "OTEL_EXPORTER_OTLP_ENDPOINT); the standard OTEL_* variables apply."
        ),
    )
    settings_module.add_arguments(serve)
    serve.set_defaults(run=run_serve)


class TraceContextFilter(logging.Filter):
    """Stamps the trace and span ids of the call being handled on each record written inside
    it. A filter, not the formatter, reads them: it runs in the task that logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace = CURRENT.get()
        if trace is not None:
            record.trace_id = f"{trace.trace_id:032x}"
            record.span_id = f"{trace.span_id:016x}"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for key in ("trace_id", "span_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def run_serve(args: argparse.Namespace) -> int:
    try:
        settings = settings_module.from_sources(args, os.environ)
        trace_config(settings, os.environ)  # a bad OTEL_* value fails here, before serving
    except settings_module.SettingsError as exc:
        print(f"forestgate serve: error: {exc}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceContextFilter())
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    if not settings.model_repository.is_dir():
        print(
            f"forestgate serve: error: setting model_repository={str(settings.model_repository)!r}:"
            " no such directory",
            file=sys.stderr,
        )
        return 2
    from forestgate.server.app import serve

    return serve(settings)
