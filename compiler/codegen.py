"""Code generation: a Treelite model -> TL2cgen C sources + the ForestGate batch shim -> .so.

The "auto" defaults are chosen by measurement: bench/engine.py swept opt levels, threshold
quantisation, branch annotation and translation-unit counts on models of 20 to 1,000 trees on
the 2-core box, and bench/results/engine.md ("Which settings win for which model sizes") has
the numbers. The generated code is instruction-cache bound, so smaller code wins:

- `-Os` at every size: fastest or tied per row and per call on every model swept. On the
  300-tree depth-8 XGBoost model, whose library outgrows the 2 MiB L2, it is a few per cent
  ahead of -O1 and about 1.4x ahead of -O2/-O3, whose larger code loses; on LightGBM models
  it is 1.1-1.8x ahead of every other level. Only on 20-tree models do the levels tie.
- `quantize` only for float64-threshold models (LightGBM, scikit-learn) above
  LARGE_MODEL_NODES. It shrinks the code by about 30 % but adds a binary search per feature to
  every row, which costs more than it saves until the float code outgrows L2. Never for float32
  thresholds (XGBoost): tl2cgen 1.0 writes its quantisation table with 8 significant digits,
  too few for float32, so inputs on such a threshold go the wrong way and verification refuses
  the build.
- `parallel_comp` always, one translation unit per NODES_PER_TRANSLATION_UNIT nodes, 2 to
  MAX_TRANSLATION_UNITS: few large units compile far slower (gcc's time grows faster than
  the function), 8 to 64 units compiled alike within the shared machine's noise, and the
  unit count did not change run time.
- No branch annotation unless asked for: it needs representative rows and measured no faster.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tl2cgen
import treelite

from forestgate.engine.manifest import BuildOptions, ModelStats
from forestgate.errors import CompileError

log = logging.getLogger(__name__)
OPT_LEVELS = ("auto", "O0", "O1", "O2", "O3", "Os")
DEFAULT_OPT_LEVEL = "Os"
# Above this many tree nodes, unquantised -Os code (~25 bytes per node) outgrows a 2 MiB L2 and
# quantisation's smaller code pays for its per-row cost; measured below at 37,500 nodes (loses)
# and above at 125,000 (wins), the boundary set where the code size crosses L2.
LARGE_MODEL_NODES = 80_000
NODES_PER_TRANSLATION_UNIT = 2_000
MAX_TRANSLATION_UNITS = 32
# Rows per block of the shim's blocked path (shim.c): bench/results/shim_blocks.md measured 256
# fastest from 64-row batches up and equal to per-row scoring below them.
BLOCK_ROWS = 256


@dataclass(frozen=True)
class CompileOptions:
    """How to build the library. "auto" picks the measured default for the model's size.

    parallel_comp: number of C translation units (0 = auto: one per ~2,000 nodes, 2 to 32).
    quantize: emit integer threshold indices instead of float compares ("auto": on only for
        models with float64 thresholds, i.e. LightGBM and scikit-learn, above 80,000 nodes).
    opt_level: gcc optimisation level ("auto": Os at every size).
    nthread: parallel gcc processes (0 = all cores).
    toolchain: the C compiler to run.
    annotate: branch-frequency annotation from sample rows, which lets gcc lay out likely branches
        first (needs representative data: `forestgate compile --sample`).
    """

    parallel_comp: int = 0
    quantize: str = "auto"
    opt_level: str = "auto"
    nthread: int = 0
    toolchain: str = "gcc"
    annotate: bool = False

    def __post_init__(self) -> None:
        if self.parallel_comp < 0:
            raise CompileError(f"parallel_comp must be >= 0, got {self.parallel_comp}")
        if self.quantize not in ("auto", "on", "off"):
            raise CompileError(f"quantize must be auto, on or off, got {self.quantize!r}")
        if self.opt_level not in OPT_LEVELS:
            raise CompileError(f"opt_level must be one of {OPT_LEVELS}, got {self.opt_level!r}")
        if self.nthread < 0:
            raise CompileError(f"nthread must be >= 0, got {self.nthread}")


def model_stats(model: treelite.Model) -> ModelStats:
    num_nodes = sum(
        int(model.get_tree_accessor(i).get_field("num_nodes")[0]) for i in range(model.num_tree)
    )
    depths = model.get_tree_depth()
    return ModelStats(
        num_trees=model.num_tree,
        num_nodes=num_nodes,
        max_depth=int(max(depths)) if len(depths) else 0,
        num_features=model.num_feature,
        threshold_type=str(model.input_type),
        leaf_output_type=str(model.output_type),
    )


def resolve_options(options: CompileOptions, stats: ModelStats) -> BuildOptions:
    """Turn "auto" settings into concrete ones for this model; the result goes in the manifest."""
    parallel_comp = options.parallel_comp or min(
        MAX_TRANSLATION_UNITS, max(2, stats.num_nodes // NODES_PER_TRANSLATION_UNIT)
    )
    quantize = options.quantize
    if quantize == "auto":
        large = stats.num_nodes > LARGE_MODEL_NODES
        quantize = "on" if stats.threshold_type == "float64" and large else "off"
    opt_level = options.opt_level
    if opt_level == "auto":
        opt_level = DEFAULT_OPT_LEVEL
    return BuildOptions(
        parallel_comp=parallel_comp,
        quantize=quantize == "on",
        opt_level=opt_level,
        nthread=options.nthread or os.cpu_count() or 1,
        toolchain=options.toolchain,
        annotate=options.annotate,
    )


def toolchain_version(toolchain: str) -> str:
    path = shutil.which(toolchain)
    if path is None:
        raise CompileError(
            f"{toolchain}: C compiler not found on PATH; install it (Debian: apt-get install gcc)"
        )
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompileError(f"{toolchain}: cannot run the C compiler ({exc})") from None
    return out.stdout.splitlines()[0].strip() if out.stdout else toolchain


def build_library(
    model: treelite.Model,
    *,
    workdir: Path,
    library_path: Path,
    resolved: BuildOptions,
    stats: ModelStats,
    annotation_rows: npt.NDArray[np.float32] | None = None,
) -> float:
    """Generate C into workdir, add the batch shim, compile to library_path; returns seconds."""
    started = time.perf_counter()
    source_dir = workdir / "src"
    params: dict[str, Any] = {"parallel_comp": resolved.parallel_comp}
    if resolved.quantize:
        params["quantize"] = 1
    try:
        if resolved.annotate and annotation_rows is not None:
            annotation = workdir / "annotation.json"
            dmat = tl2cgen.DMatrix(annotation_rows.astype(stats.threshold_type, copy=False))
            # tl2cgen refuses more threads than OpenMP allows (OMP_NUM_THREADS), so clamp.
            omp = os.environ.get("OMP_NUM_THREADS", "")
            threads = (
                min(resolved.nthread, int(omp))
                if omp.isdigit() and int(omp) > 0
                else resolved.nthread
            )
            tl2cgen.annotate_branch(model, dmat, annotation, nthread=threads)
            params["annotate_in"] = str(annotation)
        with native_output_to_log("tl2cgen"):
            tl2cgen.generate_c_code(model, source_dir, params=params)
        _add_shim(source_dir, stats)
        tl2cgen.create_shared(
            resolved.toolchain,
            source_dir,
            nthread=resolved.nthread,
            options=[f"-{resolved.opt_level}"],
            long_build_time_warning=False,
        )
    except Exception as exc:  # tl2cgen raises its own errors and bare RuntimeErrors from gcc
        text = " ".join(str(exc).split())[:400]
        raise CompileError(f"tl2cgen/{resolved.toolchain}: compilation failed ({text})") from None
    built = source_dir / "predictor.so"
    if not built.is_file():
        raise CompileError(f"{resolved.toolchain}: compilation produced no library")
    shutil.move(str(built), library_path)
    return time.perf_counter() - started


@contextlib.contextmanager
def native_output_to_log(library: str) -> Iterator[None]:
    """Send what a native library prints to the debug log, not the terminal.

    tl2cgen's native library writes straight to file descriptor 2 during code generation (among
    it, on every call, a harmless notice that its bundled treelite 4.1 reads a model serialised by
    treelite 4.8) and its Python log callback prints to stdout; LightGBM writes a "[Fatal]" line
    to descriptor 2 before raising on a bad model file. Both are captured at the descriptor and
    sys.stdout level, so the CLI's error stays on one line.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(io.StringIO()) as py_out:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace") + py_out.getvalue()
    for line in text.splitlines():
        if line.strip():
            log.debug("%s: %s", library, line)


_PREDICT = re.compile(
    r"^void predict\(union Entry\* data, int pred_margin, (float|double)\* result\) \{\n"
    r"(.*?)\n\}$",
    re.MULTILINE | re.DOTALL,
)
_UNIT_CALL = re.compile(r"^\s*predict_unit(\d+)\(data, result\);\s*$")


@dataclass(frozen=True)
class BlockedCode:
    """The generated predict() split for the shim's blocked path: fg_prepare() (what predict()
    does to a row before its units, e.g. quantising it), the units in order, and fg_finish()
    (what it does after them). Appended to main.c, whose statics they may use."""

    units: int
    helpers: str


def blocked_units(main_c: str) -> BlockedCode | None:
    """predict() split into prepare / units / finish, or None if it is not shaped as
    expected (one run of unit calls in order, nothing else among them, none elsewhere); the
    shim then calls predict() per row."""
    match = _PREDICT.search(main_c)
    if match is None:
        return None
    leaf_type, body = match.groups()
    before: list[str] = []
    units: list[int] = []
    after: list[str] = []
    for line in body.splitlines():
        call = _UNIT_CALL.match(line)
        if call is not None:
            if after:
                return None  # a unit call after the run of units
            units.append(int(call.group(1)))
        elif units and not line.strip() and not after:
            continue
        else:
            (after if units else before).append(line)
    if not units or units != list(range(len(units))):
        return None
    if any("predict_unit" in line for line in (*before, *after)):
        return None
    finish = "\n".join(after)
    if re.search(r"\btmp\b", finish) and "unsigned int tmp;" not in finish:
        finish = "  unsigned int tmp;\n" + finish
    table = ", ".join(f"predict_unit{i}" for i in units)
    helpers = (
        "\n/* ForestGate: predict() split for the blocked batch path (forestgate_shim.c). */\n"
        "void fg_prepare(union Entry* data) {\n" + "\n".join(before) + "\n}\n"
        f"void fg_finish(union Entry* data, int pred_margin, {leaf_type}* result) {{\n"
        f"{finish}\n}}\n"
        f"void (*const fg_units[{len(units)}])(union Entry*, {leaf_type}*) = {{{table}}};\n"
    )
    return BlockedCode(units=len(units), helpers=helpers)


def _add_shim(source_dir: Path, stats: ModelStats, block_rows: int | None = None) -> None:
    template = resources.files("forestgate.compiler").joinpath("shim.c").read_text("utf-8")
    leaf_type = {"float32": "float", "float64": "double"}[stats.leaf_output_type]
    main_path = source_dir / "main.c"
    main_c = main_path.read_text(encoding="utf-8")
    blocked = blocked_units(main_c)
    if blocked is None:
        log.warning("generated predict() has an unexpected shape; scoring row by row")
        block, units = 1, 0
    else:
        block = BLOCK_ROWS if block_rows is None else block_rows
        units = blocked.units
        main_path.write_text(main_c + blocked.helpers, encoding="utf-8")
    shim = (
        template.replace("@NUM_FEATURE@", str(stats.num_features))
        .replace("@LEAF_TYPE@", leaf_type)
        .replace("@BLOCK_ROWS@", str(block))
        .replace("@NUM_UNITS@", str(units))
    )
    (source_dir / "forestgate_shim.c").write_text(shim, encoding="utf-8")
    recipe_path = source_dir / "recipe.json"
    recipe = json.loads(recipe_path.read_text(encoding="utf-8"))
    for source in recipe["sources"]:
        if source.get("name") == "main":
            source["length"] = main_path.read_text(encoding="utf-8").count("\n")
    recipe["sources"].append({"name": "forestgate_shim", "length": shim.count("\n")})
    recipe_path.write_text(json.dumps(recipe), encoding="utf-8")


def options_dict(options: CompileOptions) -> dict[str, Any]:
    return asdict(options)
