"""`forestgate health`: one grpc.health.v1 Check, exit 0 only on SERVING.

It is the container's HEALTHCHECK, so it needs nothing but the installed package (no
grpc_health_probe to download). The port defaults to FORESTGATE_PORT, the variable the server
reads, so the check follows the server wherever its settings move it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from forestgate.cli import one_line_errors

DEFAULT_PORT = 50051


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    health = commands.add_parser(
        "health",
        help="check a server's grpc.health.v1 status (exit 0 when SERVING)",
        description=(
            "Ask a ForestGate server for its grpc.health.v1 status and exit 0 when it is SERVING, "
            "1 otherwise (NOT_SERVING while loading or draining, unknown service, unreachable). "
            "Meant for container health checks: `forestgate health` checks 127.0.0.1 on "
            "FORESTGATE_PORT (50051 when unset)."
        ),
    )
    health.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    health.add_argument(
        "--port", type=int, default=None, help="gRPC port (default FORESTGATE_PORT, else 50051)"
    )
    health.add_argument(
        "--service",
        default="",
        help='service to check: "" is the whole server (default), or a model name',
    )
    health.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for the answer (default 3)"
    )
    health.set_defaults(run=run_health)
    one_line_errors(health, "health")


def port(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """--port, else FORESTGATE_PORT, else the server's default."""
    if args.port is not None:
        return int(args.port)
    configured = environ.get("FORESTGATE_PORT", "")
    return int(configured) if configured.strip().isdigit() else DEFAULT_PORT


def run_health(args: argparse.Namespace) -> int:
    # gRPC core would add its own lines about a refused connection to our one-line answer.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = f"{args.host}:{port(args, os.environ)}"
    request = health_pb2.HealthCheckRequest(service=args.service)
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"{target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{target}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1
