"""Server diagnostics: cells that answer one question each and join no pooled table.

- waits: does letting a backlog wait for company (`--max-queue-delay-us`, `--max-gather-us`)
  raise throughput on the pinned engine thread, against not waiting?
- workers: `--workers 2` against 1 with the server free to use both cores.
- approval: the demo `approval` model that `make run` serves, the model a card switch calls.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from server_cells import Bench, write_requests
from server_setup import APPROVAL_CELLS, DIAGNOSTIC_CELLS, FORESTGATE, WORKER_CELLS

from forestgate.engine.model import CompiledModel

APPROVAL = "approval"
APPROVAL_ROWS = 4096


def _cell(bench: Bench, series: str, rows: int, c: int) -> dict[str, Any]:
    cell = bench.run_cell(series, rows, -2, concurrency=c)
    bench.cells.pop()  # diagnostics join no pooled table
    return cell


def waits(bench: Bench) -> list[dict[str, Any]]:
    print("diagnostic: waiting for company", file=sys.stderr, flush=True)
    series = ("forestgate_pinned", "forestgate_delay", "forestgate_gather")
    return [_cell(bench, name, rows, c) for rows, c in DIAGNOSTIC_CELLS for name in series]


def workers(bench: Bench) -> list[dict[str, Any]]:
    print("diagnostic: workers", file=sys.stderr, flush=True)
    return [
        _cell(bench, name, rows, c)
        for rows, c in WORKER_CELLS
        for name in ("workers_1", "workers_2")
    ]


def prepare_approval(cache: Path) -> dict[str, Any]:
    """The demo models as `make run` builds them (`forestgate train --config demo --preset
    small`), trained once into the cache."""
    root = cache.resolve() / "approval"
    repository = root / "models"
    if not (repository / APPROVAL).is_dir():
        print("training the demo models ...", file=sys.stderr, flush=True)
        subprocess.run(
            [FORESTGATE, "train", "--data", str(root / "data"), "--repository", str(repository),
             "--report", str(root / "reports"), "--config", "demo", "--preset", "small",
             "--run", "bench"],
            check=True,
        )  # fmt: skip
    bundle = max((repository / APPROVAL).iterdir(), key=lambda p: int(p.name))
    model = CompiledModel.open(bundle)
    return {
        "repository": str(repository),
        "bundle": str(bundle),
        "num_features": model.num_features,
        "model_stats": asdict(model.manifest.model_stats) if model.manifest.model_stats else {},
    }


def approval_rows(bundle: str, n: int, seed: int = 0) -> np.ndarray:
    """Rows drawn from the model's own training distributions (its manifest's reference):
    each feature independently, missing as often as in training, else between two of its
    101 training quantiles. Marginals are right; correlations between features are not."""
    reference = CompiledModel.open(Path(bundle)).manifest.reference
    if reference is None:
        raise RuntimeError(f"{bundle}: no reference distributions to draw rows from")
    rng = np.random.default_rng(seed)
    columns = []
    for dist in reference.features:
        levels = np.linspace(0, 1, len(dist.quantiles or (0.0, 0.0)))
        values = np.interp(rng.random(n), levels, np.asarray(dist.quantiles or (0.0, 0.0)))
        values[rng.random(n) < dist.missing_share] = np.nan
        columns.append(values)
    return np.ascontiguousarray(np.column_stack(columns), dtype=np.float32)


def approval(bench: Bench, model: dict[str, Any], workdir: Path) -> list[dict[str, Any]]:
    """The demo approval model at APPROVAL_CELLS, on its own requests."""
    print("diagnostic: the demo approval model", file=sys.stderr, flush=True)
    x = approval_rows(model["bundle"], APPROVAL_ROWS)
    saved = bench.request_files
    bench.request_files = {
        rows: write_requests(x, rows, workdir / f"approval-{rows}.bin", APPROVAL)
        for rows in {rows for rows, _ in APPROVAL_CELLS}
    }
    try:
        return [_cell(bench, "approval", rows, c) for rows, c in APPROVAL_CELLS]
    finally:
        bench.request_files = saved
