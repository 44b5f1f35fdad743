"""Provenance: the machine, software, commit and load a benchmark ran with, recorded once per run.

Every results JSON carries the same two records: `environment` (what ran: lscpu, kernel, Python,
gcc, package versions, commit and dirty flag) and `run` (when and how: UTC start, seconds, load
average before and after, and the script's settings).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str]) -> str:
    """A command's stdout, or "" when it cannot run (the report then says "?")."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""


def lscpu() -> dict[str, str]:
    fields = {}
    for line in run(["lscpu"]).splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def commit(paths: tuple[str, ...] = ()) -> tuple[str, bool]:
    """The short HEAD and whether tracked files under `paths` (all when empty) have changes.

    Scoping the dirty flag matters: other engineers commit to the same tree while a long
    benchmark runs, and only the files it measures make its numbers stale.
    """
    git = ["git", "-C", str(ROOT)]
    head = run([*git, "rev-parse", "--short", "HEAD"]).strip() or "?"
    status = run([*git, "status", "--porcelain", "--untracked-files=no", "--", *paths])
    return head, bool(status.strip())


def environment(packages: tuple[str, ...], dirty_paths: tuple[str, ...] = ()) -> dict[str, Any]:
    """What ran: CPU and caches (lscpu), kernel, Python, gcc, commit and package versions."""
    fields = lscpu()
    head, dirty = commit(dirty_paths)
    gcc = run(["gcc", "--version"]).splitlines()
    return {
        "cpu": fields.get("Model name", "?"),
        "cpus": fields.get("CPU(s)", str(os.cpu_count())),
        "l1d": fields.get("L1d cache", "?"),
        "l1i": fields.get("L1i cache", "?"),
        "l2": fields.get("L2 cache", "?"),
        "l3": fields.get("L3 cache", "?"),
        "hypervisor": fields.get("Hypervisor vendor", "none"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gcc": gcc[0] if gcc else "gcc ?",
        "commit": head,
        "dirty": dirty,
        "dirty_paths": list(dirty_paths),
        "packages": package_versions(packages),
    }


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded for the report."""
    return [round(v, 2) for v in os.getloadavg()]


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Window:
    """A run's time window: started when the benchmark starts, closed when it has measured."""

    started: str = field(default_factory=_utc_now)
    loadavg_start: list[float] = field(default_factory=loadavg)
    _t0: float = field(default_factory=time.monotonic, repr=False)

    def close(self, **settings: Any) -> dict[str, Any]:
        """The `run` record: the window, then the settings the script ran with."""
        return {
            "started": self.started,
            "seconds": round(time.monotonic() - self._t0, 1),
            "loadavg_start": self.loadavg_start,
            "loadavg_end": loadavg(),
            **settings,
        }
