"""`forestgate serve` as a subprocess, its ports read from its JSON log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

FORESTGATE = str(Path(sys.executable).with_name("forestgate"))


class ServeProcess:
    """A `forestgate serve` subprocess; reads its JSON log for the ports it bound."""

    def __init__(self, repository: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [FORESTGATE, "serve", "--model-repository", str(repository), "--port", "0",
             "--metrics-port", "0", *args],
            stderr=subprocess.PIPE, text=True, env=None if env is None else {**os.environ, **env},
        )  # fmt: skip
        self.lines: list[dict[str, object]] = []
        self.ports: list[int] = []
        self.metrics_ports: list[int] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # start-up errors are plain text, before logging
                entry = {"level": "TEXT", "msg": line.strip(), "pid": self.proc.pid}
            self.lines.append(entry)
            msg = str(entry["msg"])
            if m := re.match(r"listening on [\d.]+:(\d+)", msg):
                self.ports.append(int(m.group(1)))
            if m := re.match(r"metrics on http://[\d.]+:(\d+)/", msg):
                self.metrics_ports.append(int(m.group(1)))

    def wait_ready(self, workers: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ports) < workers and time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited: {self.lines}"
            time.sleep(0.05)
        assert len(self.ports) == workers, self.lines

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports[0]}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.close()
        return code

    def logged(self, prefix: str) -> bool:
        return any(str(line["msg"]).startswith(prefix) for line in self.lines)

    def wait_exit(self, timeout: float = 30) -> int:
        """Wait for the process to end by itself (no signal sent)."""
        code = self.proc.wait(timeout)
        self.close()
        return code

    def close(self) -> None:
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
