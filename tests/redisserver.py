"""A real redis-server for the Redis store's tests: started on a free port with persistence off,
ready once it logs so and answers PING, killed at the end."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

READY = "Ready to accept connections"


def free_port() -> int:
    # redis-server cannot bind port 0 and report it back, so the port is picked here; another
    # process taking it in between makes the start fail loudly, not silently.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[str]:
    """Yields redis://127.0.0.1:PORT/0; skips the test when redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make test installs it when run as root)")
    redis = pytest.importorskip("redis", reason="the redis extra is not installed")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--loglevel", "notice"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        # Blocks on the log itself: no sleeping, no polling.
        log = []
        for line in process.stdout:
            log.append(line)
            if READY in line:
                break
        else:
            raise RuntimeError("redis-server exited before it was ready:\n" + "".join(log))
        client = redis.Redis(port=port)
        assert client.ping()
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.communicate()
