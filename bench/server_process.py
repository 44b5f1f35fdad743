"""Server process: one benchmarked server as a subprocess pinned to the server core, with the
ports it logged, its CPU time and ForestGate's batch counters.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from server_setup import SERVER_CORE


class ServerProcess:
    """A server subprocess on SERVER_CORE (or `cores`); reads its JSON log for the ports it
    bound."""

    def __init__(
        self, key: str, cmd: list[str], env: dict[str, str], cores: str = SERVER_CORE
    ) -> None:
        self.key = key
        self.cmd = ["taskset", "-c", cores, *cmd] if shutil.which("taskset") else cmd
        self.env = env
        self.log: list[str] = []
        self._spawn()

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stderr=subprocess.PIPE, text=True, env=self.env)
        self.port = 0
        self.metrics_port = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def restart(self) -> str:
        """Replace a dead or unresponsive server; returns what happened to the old one."""
        code = self.proc.poll()
        what = f"exited with {code}" if code is not None else "was alive but not answering"
        self.stop()
        self._spawn()
        self.wait_ready()
        return what

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip())
            try:
                msg = str(json.loads(line).get("msg", ""))
            except (json.JSONDecodeError, AttributeError):
                continue
            if m := re.match(r"listening on [\d.]+:(\d+)", msg):
                self.port = int(m.group(1))
            if m := re.match(r"metrics on http://[\d.]+:(\d+)/", msg):
                self.metrics_port = int(m.group(1))

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.port:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.key} did not start: {' '.join(self.cmd)}\n" + "\n".join(self.log[-20:])
                )
            time.sleep(0.05)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def settle(self, timeout_s: float = 10.0) -> float:
        """Wait until the server stops using CPU (leftover calls from an overloaded cell)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            before = self.cpu_s()
            time.sleep(0.1)
            if self.cpu_s() - before < 0.01:
                break
        return time.monotonic() - started

    def batch_counters(self) -> dict[str, float]:
        """ForestGate's batch histograms (sums and counts), from its /metrics endpoint."""
        if not self.metrics_port:
            return {}
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        out: dict[str, float] = {}
        for name in (
            "forestgate_batch_rows_sum",
            "forestgate_batch_rows_count",
            "forestgate_compute_seconds_sum",
            "forestgate_queue_wait_seconds_sum",
            "forestgate_queue_wait_seconds_count",
        ):
            # Summed over models: a benchmark sends to one model, other loaded ones add zero.
            found = re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M)
            out[name] = sum(float(v) for v in found)
        # The batch-size histogram (cumulative counts per upper bound), summed over models too.
        for le, count in re.findall(
            r'^forestgate_batch_rows_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)$', text, re.M
        ):
            out[f"batch_rows_le_{le}"] = out.get(f"batch_rows_le_{le}", 0.0) + float(count)
        # Every ModelInfer the server saw, and those it did not answer OK.
        calls = re.findall(r"^forestgate_requests_total\{([^}]*)\} (\S+)$", text, re.M)
        infer = [(labels, float(v)) for labels, v in calls if 'method="ModelInfer"' in labels]
        out["infer_calls"] = sum(v for _, v in infer)
        out["infer_not_ok"] = sum(v for labels, v in infer if 'code="OK"' not in labels)
        return out
