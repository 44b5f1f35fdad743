"""Engine builds: compile-option variants of a model, each compiled and verified by the
ForestGate pipeline as a user would, and cached per code generator.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from engine_data import ModelSpec, cache_key

from forestgate.compiler import codegen
from forestgate.compiler.pipeline import compile_model
from forestgate.engine.manifest import ModelStats
from forestgate.errors import CompileError


@dataclass(frozen=True)
class Variant:
    """One set of compile options; its key names the cached bundle."""

    opt_level: str
    parallel_comp: int
    quantize: bool
    annotate: bool = False

    @property
    def key(self) -> str:
        q = "q1" if self.quantize else "q0"
        a = "-ann" if self.annotate else ""
        return f"{self.opt_level}-pc{self.parallel_comp}-{q}{a}"

    @property
    def label(self) -> str:
        parts = [f"-{self.opt_level}", f"pc{self.parallel_comp}"]
        parts.append("quantize" if self.quantize else "float")
        if self.annotate:
            parts.append("annotated")
        return " ".join(parts)

    def options(self) -> codegen.CompileOptions:
        return codegen.CompileOptions(
            parallel_comp=self.parallel_comp,
            quantize="on" if self.quantize else "off",
            opt_level=self.opt_level,
            annotate=self.annotate,
        )


@dataclass
class Build:
    """A compiled, verified bundle and what it cost to make."""

    model: str
    variant: Variant
    bundle_dir: Path
    codegen_gcc_s: float  # tl2cgen code generation + gcc, from the manifest
    pipeline_s: float  # the whole compile_model call: load, build, verify, write
    so_bytes: int
    verify_rows: int
    verify_max_abs_diff: float
    resolved: dict[str, Any] = field(default_factory=dict)
    # 1-minute load average, highest of before and after the build (compile times on a shared
    # 2-core machine swing with it); None for builds recorded before it was kept.
    loadavg: float | None = None

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["variant"] = asdict(self.variant) | {"key": self.variant.key}
        d["bundle_dir"] = str(self.bundle_dir)
        return d


def codegen_fingerprint() -> str:
    """What, besides the model and the options, decides a bundle's code: the shim and its
    block size."""
    shim = resources.files("forestgate.compiler").joinpath("shim.c").read_text("utf-8")
    return "codegen-" + cache_key(shim, codegen.BLOCK_ROWS)


def _cached(
    spec: ModelSpec, variant: Variant, bundle_dir: Path, record_path: Path
) -> Build | str | None:
    """A build recorded by an earlier run (or its refusal), or None when there is none."""
    if not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    if "error" in record:
        return str(record["error"])
    if not (bundle_dir / "manifest.json").is_file():
        return None
    return Build(
        model=spec.name,
        variant=variant,
        bundle_dir=bundle_dir,
        codegen_gcc_s=record["codegen_gcc_s"],
        pipeline_s=record["pipeline_s"],
        so_bytes=record["so_bytes"],
        verify_rows=record["verify_rows"],
        verify_max_abs_diff=record["verify_max_abs_diff"],
        resolved=record["resolved"],
        loadavg=record.get("loadavg"),
    )


def build(
    spec: ModelSpec,
    *,
    model_path: Path,
    model_key: str,
    variant: Variant,
    sample: npt.NDArray[np.float32],
    cache: Path,
) -> Build | str:
    """Compile (or reuse) one variant through the ForestGate pipeline, as a user would.

    Returns the build, or the pipeline's error message when it refuses the variant (a failed
    verification is a result worth reporting, and is cached like a success).
    """
    # Bundles are cached per code generator too: a changed shim or block size must rebuild them.
    repository = cache / "bundles" / codegen_fingerprint()
    bundle_dir = repository / model_key / variant.key
    record_path = repository / model_key / f"{variant.key}.build.json"
    cached = _cached(spec, variant, bundle_dir, record_path)
    if cached is not None:
        return cached
    record_path.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        result = compile_model(
            model_path,
            name=model_key,
            version=variant.key,
            repository=repository,
            options=variant.options(),
            sample=sample,
            overwrite=True,
        )
    except CompileError as exc:
        message = f"{type(exc).__name__}: {exc}"
        record_path.write_text(json.dumps({"variant": variant.key, "error": message}))
        return message
    pipeline_s = time.perf_counter() - started
    manifest = result.manifest
    out = Build(
        model=spec.name,
        variant=variant,
        bundle_dir=bundle_dir,
        codegen_gcc_s=manifest.compiler.compile_seconds,
        pipeline_s=round(pipeline_s, 3),
        so_bytes=manifest.library.size_bytes,
        verify_rows=result.verification.rows,
        verify_max_abs_diff=result.verification.max_abs_diff,
        resolved=asdict(manifest.compiler.resolved),
        loadavg=round(max(load_before, os.getloadavg()[0]), 2),
    )
    record_path.write_text(json.dumps(out.as_json(), indent=1))
    return out


def auto_variant(stats: ModelStats) -> Variant:
    """The variant `forestgate compile` builds with no options: what users get by default."""
    r = codegen.resolve_options(codegen.CompileOptions(), stats)
    return Variant(r.opt_level, r.parallel_comp, r.quantize, r.annotate)


def variant_grid(spec: ModelSpec, auto: Variant, stats: ModelStats, quick: bool) -> list[Variant]:
    """The compile options swept for one model, the default first.

    Every opt level with and without threshold quantisation, branch annotation at -O1 and -Os
    (not for the sweep-only models), and, for the medium models, translation-unit counts.
    tl2cgen's quantisation table loses float32 precision (see engine.md), so for
    float32-threshold models one quantised variant documents that and no other is built.
    """
    pc = auto.parallel_comp
    exact_quantize = stats.threshold_type == "float64"
    if quick:
        grid = [auto, Variant("O3", pc, auto.quantize), Variant("O1", pc, auto.quantize)]
        return list({v.key: v for v in grid}.values())
    grid = [auto]
    for opt in ("O1", "O2", "O3", "Os"):
        grid.append(Variant(opt, pc, False))
        if exact_quantize:
            grid.append(Variant(opt, pc, True))
    if not exact_quantize:
        grid.append(Variant("O1", pc, True))
    if spec.size == "large":  # each build takes a while: opt levels and quantisation only
        grid = [v for v in grid if v.opt_level != "O2"]
    if not spec.sweep_only:
        for opt in ("O1", "Os"):
            grid.append(Variant(opt, pc, False, annotate=True))
    if spec.size == "medium":
        for tus in (8, 32, 64):  # fewer units only compile slower (2 took minutes at -Os)
            grid.append(Variant(auto.opt_level, tus, auto.quantize))
    return list({v.key: v for v in grid}.values())
