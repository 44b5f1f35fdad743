"""`forestgate health`, the container's HEALTHCHECK, run as a command against a live server:
exit 0 only on SERVING, 1 when draining, for an unknown service, or with nobody listening."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

from forestgate.clients import health as health_command
from forestgate.server.settings import Settings
from tests.server.conftest import (  # noqa: F401 (fixtures)
    live_server,
    model_repository,
    rows,
    serve_with,
)

FORESTGATE = str(Path(sys.executable).with_name("forestgate"))


def health(*args: str, port: int | None = None) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key != "FORESTGATE_PORT"}
    if port is not None:
        environ["FORESTGATE_PORT"] = str(port)
    return subprocess.run(
        [FORESTGATE, "health", *args], capture_output=True, text=True, timeout=60,
        env=environ, check=False,
    )  # fmt: skip


def test_serving_exits_0_on_the_flag_or_the_servers_own_variable(live_server):  # noqa: F811
    by_flag = health("--port", str(live_server.port))
    assert (by_flag.returncode, by_flag.stdout.split()[-1]) == (0, "SERVING"), by_flag.stderr
    by_variable = health(port=live_server.port)  # as in the image: FORESTGATE_PORT only
    assert by_variable.returncode == 0, by_variable.stderr
    model = health("--port", str(live_server.port), "--service", "fraud")
    assert model.returncode == 0, model.stderr


def test_an_unknown_service_or_no_server_exits_1_with_the_reason(live_server):  # noqa: F811
    unknown = health("--port", str(live_server.port), "--service", "no-such-model")
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stderr
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    nobody = health("--port", str(closed), "--timeout", "2")
    assert nobody.returncode == 1
    assert "UNAVAILABLE" in nobody.stderr


def test_a_draining_server_is_not_healthy(serve_with, model_repository):  # noqa: F811
    with serve_with(model_repository) as server:
        running = server.running
        drained = asyncio.run_coroutine_threadsafe(running.health.drain(), server.loop)  # type: ignore[attr-defined]
        drained.result(timeout=10)
        done = health("--port", str(server.port))
    assert done.returncode == 1
    assert done.stdout.split()[-1] == "NOT_SERVING"


def test_without_a_port_or_variable_it_checks_the_servers_default_port():
    # clients import nothing from the server, so the default is written twice; this holds them
    assert Settings.__dataclass_fields__["port"].default == health_command.DEFAULT_PORT
