"""Generated data sets: `forestgate generate` output cached under bench/.cache, per preset.

The generator writes its preset and seed into the Parquet schema, so a report can say which
synthetic world it measured.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
FORESTGATE = str(Path(sys.executable).with_name("forestgate"))


def data_set(preset: str) -> Path:
    """bench/.cache/generated-PRESET, generated the first time it is asked for."""
    data = HERE / ".cache" / f"generated-{preset}"
    if not (data / "attempts.parquet").is_file():
        cmd = [FORESTGATE, "generate", "--preset", preset, "--out", str(data)]
        subprocess.run(cmd, check=True)
    return data


def generator(data: Path) -> dict[str, str]:
    """The generator's parameters (forestgate.preset, forestgate.seed, ...) of a data set."""
    meta = pq.read_schema(data / "attempts.parquet").metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"forestgate.")}
