"""The demo models as `forestgate train` builds them (small preset, demo configuration): trained
and compiled once per test run by the `trained` session fixture (tests/conftest.py), and shared by
the training, decision API and simulator tests."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FORESTGATE = str(Path(sys.executable).with_name("forestgate"))
SEED = "20251128"


@dataclass(frozen=True)
class Trained:
    data: Path
    repository: Path
    report: Path
    stdout: str
    stderr: str


def _train(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FORESTGATE, "train", *args],
        capture_output=True, text=True, timeout=900, env=env, check=False,
    )  # fmt: skip


def train_demo(root: Path) -> Trained:
    data, repository, report = root / "data", root / "models", root / "reports"
    data.mkdir()  # empty: the command generates into it
    done = _train(
        "--data", str(data), "--repository", str(repository), "--report", str(report),
        "--config", "demo", "--preset", "small", "--seed", SEED, "--run", "first",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return Trained(data, repository, report, done.stdout, done.stderr)
