"""The machine a benchmark ran on: lscpu fields, package versions and command output."""

from __future__ import annotations

import subprocess
from importlib import metadata


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
