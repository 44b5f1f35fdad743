"""`forestgate serve`: settings from flags and FORESTGATE_* variables, JSON logs, then serve."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from forestgate.server import settings as settings_module


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
            "exit 0. Every setting also reads FORESTGATE_<NAME> (a flag wins)."
        ),
    )
    settings_module.add_arguments(serve)
    serve.set_defaults(run=run_serve)


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
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def run_serve(args: argparse.Namespace) -> int:
    try:
        settings = settings_module.from_sources(args, os.environ)
    except settings_module.SettingsError as exc:
        print(f"forestgate serve: error: {exc}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
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
