"""Synthetic-transaction generation end to end: validate the request, build the world, plan the
scenarios, draw the payments, simulate every attempt, write one Parquet file per table
(docs/generator.md, "Tables"). Same preset and seed, byte-identical files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forestgate.training.directories import directory, writable
from forestgate.training.generator import presets
from forestgate.training.generator.arrivals import generate_payments
from forestgate.training.generator.scenarios import plan
from forestgate.training.generator.simulate import simulate
from forestgate.training.generator.tables import attempts_and_truth, dimension_tables
from forestgate.training.generator.world import build_world

GENERATOR_VERSION = "1.0.0"
# Payments per target attempt: retries, cascades and step-ups add about 9 %.
_PAYMENTS_PER_ATTEMPT = 0.92


@dataclass(frozen=True, slots=True)
class Request:
    """A validated generation request."""

    preset: presets.Preset
    seed: int
    out: Path


@dataclass(frozen=True, slots=True)
class Result:
    out: Path
    files: dict[str, int]  # table name -> rows
    seconds: float
    dropped_compliant: int
    guardrail_checks: int


def validate(preset: object, seed: object, out: object) -> Request:
    """The request, or InvalidInput naming the field; checks ``out`` is a writable directory
    (creating it) before any work starts."""
    chosen = presets.preset(preset)
    value = presets.seed(seed)
    return Request(chosen, value, writable("out", directory("out", out)))


def generate(request: Request) -> Result:
    started = time.perf_counter()
    world = build_world(request.preset, request.seed)
    scenarios = plan(
        world.horizon,
        issuers=world.issuers,
        merchants=world.merchants,
        routes=world.routes,
        visa_cap_changes=world.rules.limits.visa_max_reattempts.changes(),
    )
    rng = np.random.default_rng(np.random.SeedSequence([request.seed, 3]))
    payments = generate_payments(
        rng, world, scenarios, count=int(request.preset.attempts * _PAYMENTS_PER_ATTEMPT)
    )
    sim = simulate(world, scenarios, payments, request.seed)
    attempts, truth = attempts_and_truth(world, scenarios, payments, sim)
    tables = {"attempts": attempts, "truth": truth, **dimension_tables(world, scenarios)}
    meta = {
        b"forestgate.generator": GENERATOR_VERSION.encode(),
        b"forestgate.preset": request.preset.name.encode(),
        b"forestgate.seed": str(request.seed).encode(),
        b"forestgate.rules_version": world.rules.version.encode(),
        b"forestgate.routes_version": world.routes.table.version.encode(),
        b"forestgate.horizon_start": world.horizon.start.isoformat().encode(),
        b"forestgate.horizon_days": str(world.horizon.days).encode(),
    }
    files: dict[str, int] = {}
    for name, table in tables.items():
        _write(table.replace_schema_metadata(meta), request.out / f"{name}.parquet")
        files[name] = table.num_rows
    return Result(
        out=request.out,
        files=files,
        seconds=time.perf_counter() - started,
        dropped_compliant=sim.dropped_compliant,
        guardrail_checks=sim.guardrail_checks,
    )


def _write(table: pa.Table, path: Path) -> None:
    # Written beside the target and renamed, so a reader never sees half a file.
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd", write_statistics=True)
    tmp.replace(path)
