"""Report: bench/engine.py's measurements as engine.md, engine.json and engine.png.

Every number in the markdown comes from the measured results passed in; the prose around them
is chosen by comparing those numbers, so a rerun that measures differently says so.
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any

import numpy as np
from machine import lscpu, package_versions, run

from forestgate.compiler import codegen

FG = "forestgate (default options)"
RAW = "raw ctypes (same .so)"
CALL_TARGET_BATCHES = (1, 2, 4, 8, 16)
ROW_TARGET_BATCH = 256
ROW_TARGET_RATIO = 1.2
NOISY_CPU_SHARE = 0.9
PACKAGES = (
    "numpy",
    "xgboost-cpu",
    "lightgbm",
    "scikit-learn",
    "treelite",
    "tl2cgen",
    "onnxruntime",
    "onnxmltools",
    "skl2onnx",
    "onnx",
    "lleaves",
    "llvmlite",
    "matplotlib",
)
BENCHMARKED = ("compiler", "forestgate", "bench/engine.py", "bench/engine_*.py")


def environment() -> dict[str, Any]:
    """Machine, commit and package versions, for the report header."""
    fields = lscpu()
    versions = package_versions(PACKAGES)
    return {
        "cpu": fields.get("Model name", "?"),
        "cpus": fields.get("CPU(s)", "?"),
        "l1d": fields.get("L1d cache", "?"),
        "l1i": fields.get("L1i cache", "?"),
        "l2": fields.get("L2 cache", "?"),
        "l3": fields.get("L3 cache", "?"),
        "hypervisor": fields.get("Hypervisor vendor", "none"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gcc": run(["gcc", "--version"]).splitlines()[0],
        "commit": run(["git", "rev-parse", "--short", "HEAD"]).strip(),
        # Only what this benchmark runs counts: others commit to the same tree concurrently.
        "dirty": bool(run(["git", "status", "--porcelain", "--", *BENCHMARKED]).strip()),
        "packages": versions,
    }


def us(v: float) -> str:
    if not np.isfinite(v):
        return "-"
    if v >= 1000:
        return f"{v / 1000:.2f} ms"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(v: float) -> str:
    return f"{v:.2f}x"


class ModelView:
    """One model's results, indexed for the tables."""

    def __init__(self, name: str, r: dict[str, Any]) -> None:
        self.name = name
        self.r = r
        self.plan = r["plan"]
        self.engines = [e["name"] for e in r["engines"]]
        self.kind = {e["name"]: e["kind"] for e in r["engines"]}
        self.cells = {(c["engine"], c["batch"]): c for c in r["cells"]}
        self.vcells = {(c["engine"], c["batch"]): c for c in r["variant_cells"]}
        self.builds = {b["variant"]["key"]: b for b in self.plan["builds"]}
        self.auto = self.plan["auto"]
        self.batches = sorted({c["batch"] for c in r["cells"]})
        self.vbatches = sorted({c["batch"] for c in r["variant_cells"]})

    @property
    def competitors(self) -> list[str]:
        """Every other engine: not ForestGate itself, not the raw call of its own entry point."""
        return [e for e in self.engines if self.kind[e] != "forestgate" and e != RAW]

    def median(self, engine: str, b: int) -> float:
        c = self.cells.get((engine, b))
        return c["median_us"] if c else float("nan")

    def per_row(self, engine: str, b: int) -> float:
        return self.median(engine, b) / b

    def fastest(self, engines: list[str], b: int) -> tuple[str, float]:
        best = min(engines, key=lambda e: self.median(e, b))
        return best, self.median(best, b)

    def so_mb(self, key: str) -> float:
        return self.builds[key]["build"]["so_bytes"] / 1e6

    def vrow(self, key: str, b: int) -> float:
        c = self.vcells.get((key, b))
        return c["median_us"] / b if c else float("nan")

    def vtyp(self, key: str) -> float:
        """A variant's typical per-row time: the median of its per-row medians at b >= 16, which
        one disturbed cell cannot move much."""
        vals = [self.vrow(key, b) for b in self.vbatches if b >= 16]
        vals = [x for x in vals if np.isfinite(x)]
        return float(np.median(vals)) if vals else float("nan")

    def built(self) -> list[str]:
        return [k for k, b in self.builds.items() if "build" in b]


def targets(views: list[ModelView]) -> list[dict[str, Any]]:
    """Each target's ratio from the pooled medians, plus its range over the timing rounds (each
    round's ForestGate median / the fastest other engine's median in that same round)."""
    rows = []
    for v in views:
        if FG not in v.engines:
            continue
        cases = [(b, False) for b in CALL_TARGET_BATCHES if b in v.batches]
        if ROW_TARGET_BATCH in v.batches:
            cases.append((ROW_TARGET_BATCH, True))
        for b, per_row in cases:
            best, t = v.fastest(v.competitors, b)
            q = v.median(FG, b) / t
            ours = v.cells[(FG, b)]["round_medians_us"]
            others = [v.cells[(e, b)]["round_medians_us"] for e in v.competitors]
            by_round = [o / min(x[r] for x in others) for r, o in enumerate(ours)]
            if per_row:
                target = f"per row, b={b}: within {ROW_TARGET_RATIO}x of the fastest"
                met = q <= ROW_TARGET_RATIO
            else:
                target = f"per call, b={b}: faster than every other engine"
                met = q < 1.0
            rows.append(
                {
                    "model": v.name,
                    "target": target,
                    "ours_us": v.median(FG, b) / (b if per_row else 1),
                    "best_other": best,
                    "best_other_us": t / (b if per_row else 1),
                    "ratio": q,
                    "ratio_by_round": by_round,
                    "met": met,
                }
            )
    return rows


def write(results: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    views = [ModelView(n, r) for n, r in results["models"].items()]
    results["targets"] = targets(views)
    (out_dir / "engine.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    if any(v.engines for v in views):
        plot([v for v in views if v.engines], out_dir / "engine.png")
    (out_dir / "engine.md").write_text(markdown(results, views))


def plot(views: list[ModelView], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2
    rows = (len(views) + 1) // 2
    fig, axes = plt.subplots(rows, cols, figsize=(13, 5.2 * rows), squeeze=False)
    for ax, v in zip(axes.flat, views, strict=False):
        for e in v.engines:
            ys = [v.per_row(e, b) for b in v.batches]
            style = "--" if v.kind[e] == "call path" else "-"
            width = 2.8 if v.kind[e] == "forestgate" else 1.3
            ax.plot(v.batches, ys, style, marker="o", ms=3, lw=width, label=e)
        ax.set_title(f"{v.name}: {v.plan['spec']['shape']}, default .so {v.so_mb(v.auto):.2f} MB")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (rows per call)")
        ax.set_ylabel("median µs per row")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(views) :]:
        ax.axis("off")
    fig.suptitle("Per-row latency vs batch size, one thread (bench/engine.py, lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: dict[str, Any], views: list[ModelView]) -> str:
    env, run = results["environment"], results["run"]
    full = [v for v in views if v.engines]
    out: list[str] = []
    w = out.append
    w("# Engine benchmark: the compiled ForestGate library against other tree-ensemble engines\n")
    dirty = " (plus uncommitted changes)" if env["dirty"] else ""
    w(
        f"Generated by `bench/engine.py` on {run['started']} at commit `{env['commit']}`{dirty}, "
        f"in {run['seconds'] / 60:.1f} minutes. Every number and every comparison below is "
        "written by the script from its own measurements; the raw data is in "
        "[engine.json](engine.json) and the plot in [engine.png](engine.png). Rerun: "
        "`.venv/bin/python bench/engine.py` (`--quick` for a smoke run); trained models and "
        "compiled bundles are cached in `bench/.cache/`.\n"
    )
    rendered = results.get("rendered", {}).get("commit")
    if rendered and rendered != env["commit"]:
        w(
            f"The text was re-rendered from the same measurements at commit `{rendered}` "
            "(`bench/engine.py --render`); no number changed.\n"
        )
    if run["quick"]:
        w(
            "**This is a `--quick` smoke run: small models, few batch sizes, short timings. "
            "Do not quote its numbers.**\n"
        )
    if full:
        summary(w, results, full)
    setup_section(w, env, run, views)
    if full:
        w("![per-row latency vs batch size](engine.png)\n")
        target_section(w, results["targets"])
        for v in full:
            latency_section(w, v)
        call_path_section(w, full)
    variants_section(w, views)
    settings_section(w, views)
    if full:
        discussion(w, results, full)
    return "\n".join(out) + "\n"


def summary(w: Any, results: dict[str, Any], views: list[ModelView]) -> None:
    t = results["targets"]
    met = sum(r["met"] for r in t)
    w("## Headline\n")
    w(
        f"Targets met: **{met} of {len(t)}** (see [Targets](#targets)). Median µs per call at "
        "b=1 and b=16 and per row at b=256; ForestGate is `CompiledModel.predict` on the bundle "
        "`forestgate compile` builds with its default options.\n"
    )
    w("| model | engine | per call b=1 | per call b=16 | per row b=256 |")
    w("|---|---|---|---|---|")
    for v in views:
        for e in v.engines:
            if e == RAW:
                continue
            name = f"**{e}**" if e == FG else e
            w(
                f"| {v.name} | {name} | {us(v.median(e, 1))} | {us(v.median(e, 16))} | "
                f"{us(v.per_row(e, 256))} |"
            )
    w("")
    w(
        "| model | default build | compile s (codegen + gcc) | whole pipeline s | load average "
        "during the build | .so MB |"
    )
    w("|---|---|---|---|---|---|")
    for v in views:
        b = v.builds[v.auto]["build"]
        load = "-" if b.get("loadavg") is None else f"{b['loadavg']:.1f}"
        w(
            f"| {v.name} | `{v.auto}` | {b['codegen_gcc_s']:.1f} | {b['pipeline_s']:.1f} | "
            f"{load} | {v.so_mb(v.auto):.2f} |"
        )
    w(
        "\nCompile times are wall clock on the shared 2 vCPUs; a load average above 2 means "
        "other work competed with gcc's two processes (see the variant tables).\n"
    )


def setup_section(w: Any, env: dict[str, Any], run: dict[str, Any], views: list[ModelView]) -> None:
    w("## Machine, software and method\n")
    w(
        f"* **CPU:** {env['cpu']}, {env['cpus']} vCPUs ({env['hypervisor']} guest); L1d "
        f"{env['l1d']}, L1i {env['l1i']}, **L2 {env['l2']}**, L3 {env['l3']} (lscpu). Linux "
        f"{env['kernel']}, Python {env['python']}, {env['gcc']}."
    )
    w("* **Packages:** " + ", ".join(f"{k} {v}" for k, v in env["packages"].items()) + ".")
    b = run["budget"]
    all_cells = [c for v in views for c in v.r["cells"] + v.r["variant_cells"]]
    shares = [c["cpu_share"] for c in all_cells]
    loads = [c["loadavg_max"] for c in all_cells]
    noisy = sum(s < NOISY_CPU_SHARE for s in shares)
    w(
        "* **Shared, noisy machine:** other engineers ran their test suites and benchmarks on "
        "the same 2 vCPUs during this run. The 1-minute load average was "
        f"{run['loadavg_start'][0]:.2f} at the start and {run['loadavg_end'][0]:.2f} at the "
        f"end, {min(loads):.2f}-{max(loads):.2f} across cells (this benchmark alone is 1.0). "
        f"cpu_share (thread CPU time / wall time) ranged {min(shares):.2f}-{max(shares):.2f}; "
        f"{noisy} of {len(shares)} cells fell below {NOISY_CPU_SHARE} and are marked † (the "
        "timed thread was descheduled part of the time, which inflates p99 far more than the "
        "median). Engines are interleaved, so a ratio within one table compares engines under "
        "the same conditions; p99 on a shared 2-vCPU VM is mostly scheduler noise."
    )
    w(
        "* **One thread everywhere:** `OMP_NUM_THREADS=1` before any import; XGBoost "
        "`nthread=1`, LightGBM `num_threads=1`, GTIL `nthread=1`, tl2cgen "
        "`Predictor(nthread=1)`, onnxruntime 1 intra-op and 1 inter-op thread, sequential; "
        "lleaves `n_jobs=1`."
    )
    w(
        "* **Timing:** `time.perf_counter_ns` around every call, GC disabled. Each round visits "
        "every batch size and, in a rotating order, every engine of the model, so the engines "
        f"of one table are measured side by side; {b['rounds']} rounds of {b['slice_s']} s per "
        f"engine and batch size (at least {b['min_calls']} calls), each after {b['warmup_s']} s "
        f"of warm-up. Every call gets different rows: the {run['n_test']:,} test rows (most "
        "with a NaN) are cycled in order. Per row = per-call median / batch size."
    )
    w(
        f"* **Data:** {run['n_train']:,} training rows, 64 float32 features (50 continuous: "
        "normal, log-normal amounts, uniform, heavy-tailed; 8 with 5-40 % informative NaN; 6 "
        "integer-coded categoricals), a non-linear label with about 8 % positives "
        "(engines.md section 4)."
    )
    w(
        "* **Compiled path:** every bundle is built by `pipeline.compile_model` from the saved "
        "model file, and verified by it (20,000 training rows are added to its sample), in a "
        "separate process without the OpenMP pin; the benchmark then opens it with "
        "`CompiledModel.open`. *Default options* is what `forestgate compile` builds with no "
        "tuning flags at this commit. The tiny and large models only join the compile-option sweep."
    )
    w(
        "* **Other engines:** onnxruntime runs the onnxmltools conversion "
        "(`TreeEnsembleClassifier`); lleaves runs its defaults (fp64, `fblocksize` 34), called "
        "through `predict` and through its compiled entry point with float64 rows converted "
        "before timing.\n"
    )
    w(
        "| model | shape | nodes (all) | max depth | nodes visited per row | test AUC | "
        "train s (2 threads) | default build |"
    )
    w("|---|---|---|---|---|---|---|---|")
    for v in views:
        p, s = v.plan, v.plan["stats"]
        w(
            f"| {v.name} | {p['spec']['shape']} | {s['num_nodes']:,} | {s['max_depth']} | "
            f"{p['nodes_visited_per_row']:.0f} | {p['info']['test_auc']:.3f} | "
            f"{p['info']['train_seconds']:.0f} | `{v.auto}` |"
        )
    w("")
    full = [v for v in views if v.engines]
    w(
        "**Correctness, checked before timing:** max |engine - native| of the predicted "
        "probability over the first test rows (rows with |diff| > 1e-4 in brackets).\n"
    )
    if full:
        names = list(dict.fromkeys(e for v in full for e in v.engines))
        w("| engine | " + " | ".join(v.name for v in full) + " |")
        w("|---|" + "---|" * len(full))
        for e in names:
            cells = []
            for v in full:
                c = v.r["correctness"].get(e)
                cells.append(f"{c['max_abs_diff']:.2g} ({c['rows_over_1e-4']})" if c else "-")
            w(f"| {e} | " + " | ".join(cells) + " |")
        w("")
    worst = []
    for v in views:
        vc = [c for k, c in v.r["variant_correctness"].items() if k in v.built()]
        diff = max(c["max_abs_diff"] for c in vc)
        rows = max(c["rows_over_1e-4"] for c in vc)
        worst.append(f"{v.name} {diff:.2g} ({rows})")
    w(
        "Worst over every compile variant of the sweep, per model: " + ", ".join(worst) + ". "
        "Every bundle also passed the pipeline's own verification at build time.\n"
    )


def target_section(w: Any, rows: list[dict[str, Any]]) -> None:
    w("## Targets\n")
    w(
        "From the issue: the compiled path is faster per call than every other engine at "
        f"batch sizes 1 to 16, and within {ROW_TARGET_RATIO}x of the fastest engine per row at "
        "b=256. Ratio = ForestGate / the fastest other engine in the same run (below 1: "
        "ForestGate is faster). *Other engines* are every row of the model's table except "
        "ForestGate's own raw ctypes call; tl2cgen's `Predictor` on the same library counts as "
        "another engine. The issue's realistic model is xgb_med; the others show how far the "
        "result carries.\n"
    )
    w(
        "| model | target | ForestGate µs | fastest other engine | its µs | ratio | ratio range "
        "over rounds | result |"
    )
    w("|---|---|---|---|---|---|---|---|")
    for r in rows:
        verdict = "**MET**" if r["met"] else "**MISSED**"
        spread = f"{min(r['ratio_by_round']):.2f}-{max(r['ratio_by_round']):.2f}"
        w(
            f"| {r['model']} | {r['target']} | {us(r['ours_us'])} | {r['best_other']} | "
            f"{us(r['best_other_us'])} | {ratio(r['ratio'])} | {spread} | {verdict} |"
        )
    w("")
    flaky = [
        r
        for r in rows
        if (min(r["ratio_by_round"]) <= _limit(r)) != (max(r["ratio_by_round"]) <= _limit(r))
    ]
    if flaky:
        w(
            f"{len(flaky)} of {len(rows)} verdicts would flip in at least one round on its own "
            "(the round range straddles the target): "
            + ", ".join(f"{r['model']} {r['target'].split(':')[0]}" for r in flaky)
            + ". The others hold in every round.\n"
        )
    else:
        w("Every verdict holds in every timing round on its own.\n")


def _limit(r: dict[str, Any]) -> float:
    return ROW_TARGET_RATIO if r["target"].startswith("per row") else 1.0 - 1e-12


def _mark(c: dict[str, Any] | None, text: str) -> str:
    return text + ("†" if c and c["cpu_share"] < NOISY_CPU_SHARE else "")


def latency_section(w: Any, v: ModelView) -> None:
    s = v.plan["stats"]
    w(
        f"## {v.name}: {v.plan['spec']['shape']} ({s['num_nodes']:,} nodes, default .so "
        f"{v.so_mb(v.auto):.2f} MB)\n"
    )
    head = "| engine | " + " | ".join(f"b={b}" for b in v.batches) + " |"
    w("Per call, median µs (p99 µs):\n")
    w(head)
    w("|---|" + "---|" * len(v.batches))
    for e in v.engines:
        cells = [v.cells.get((e, b)) for b in v.batches]
        text = [_mark(c, f"{us(c['median_us'])} ({us(c['p99_us'])})") if c else "-" for c in cells]
        w(f"| {e} | " + " | ".join(text) + " |")
    w(
        "\nPer row, median µs; the noise context of each engine's cells (lowest cpu_share, "
        "highest load average); and a least-squares fit of median = a + c * batch over "
        "b <= 64 (*a* estimates the fixed cost of a call, *c* the cost of a row):\n"
    )
    w(head[:-1] + "| min cpu_share | max load | fit a µs | fit c µs |")
    w("|---|" + "---|" * (len(v.batches) + 4))
    for e in v.engines:
        cells = [v.cells.get((e, b)) for b in v.batches]
        fit = v.r["fits"][e]
        mine = [c for c in cells if c]
        text = [_mark(c, us(c["per_row_us"])) if c else "-" for c in cells]
        w(
            f"| {e} | " + " | ".join(text) + f" | {min(c['cpu_share'] for c in mine):.2f} | "
            f"{max(c['loadavg_max'] for c in mine):.2f} | {us(fit['a_us'])} | "
            f"{us(fit['c_us'])} |"
        )
    w("")


LOCK = "lifecycle lock pair only (2 acquire/release + notify check)"
RAW_CALL = "raw ctypes forestgate_predict_f32, preallocated out"
FG_OUT = "CompiledModel.predict(x, out=preallocated)"
FG_CALL = "CompiledModel.predict(x)"


def call_path_section(w: Any, views: list[ModelView]) -> None:
    w("## Call path: the fixed cost of one predict call\n")
    w(
        "Three ways to call the same compiled library: ForestGate's `CompiledModel.predict` "
        "(one ctypes call into the bundle's batch entry point, with input checks and a "
        "lifecycle lock taken twice), the same entry point called straight through ctypes "
        "with a preallocated output, and tl2cgen's `Predictor` with a `DMatrix`. *b=1* is the "
        "per-call median from the latency tables, *fit a* and *fit c* the intercept and slope "
        "of median = a + c * batch over b <= 64.\n"
    )
    paths = [FG, RAW, "tl2cgen.Predictor (same .so)"]
    w("| model | call path | b=1 median µs | fit a µs | fit c µs/row |")
    w("|---|---|---|---|---|")
    for v in views:
        for p in paths:
            fit = v.r["fits"][p]
            w(f"| {v.name} | {p} | {us(v.median(p, 1))} | {us(fit['a_us'])} | {us(fit['c_us'])} |")
    w("")
    w(
        "Breakdown at b=1: mean µs per call over blocks of back-to-back calls on distinct "
        "rows, no timer inside a block (median of the block means, p10-p90 in brackets). The "
        "lock row runs the two critical sections `CompiledModel.predict` runs around the "
        "native call, on a fresh lock and condition of the same types.\n"
    )
    items = list(views[0].r["call_path"])
    w("| step | " + " | ".join(v.name for v in views) + " |")
    w("|---|" + "---|" * len(views))
    for item in items:
        cells = []
        for v in views:
            c = v.r["call_path"][item]
            cells.append(f"{c['median_us']:.3f} ({c['p10_us']:.3f}-{c['p90_us']:.3f})")
        w(f"| {item} | " + " | ".join(cells) + " |")
    w("")

    def col(item: str) -> list[float]:
        return [v.r["call_path"][item]["median_us"] for v in views]

    lock, raw, fg = col(LOCK), col(RAW_CALL), col(FG_CALL)
    extra = [a - b for a, b in zip(fg, raw, strict=True)]
    share = [(a - b) / a for a, b in zip(fg, raw, strict=True)]
    lock_share = [a / b for a, b in zip(lock, fg, strict=True)]
    ptr = col("x.ctypes.data only (pointer of the input)")
    check = col("CompiledModel.check_input only")
    dmat = col("tl2cgen.DMatrix(x) only")
    w(
        f"Reading it: the lifecycle lock pair costs {min(lock):.2f}-{max(lock):.2f} µs, which "
        f"is measurable: {min(lock_share):.0%}-{max(lock_share):.0%} of a whole batch-1 "
        f"`CompiledModel.predict`. All of `CompiledModel.predict`'s Python work adds "
        f"{min(extra):.2f}-{max(extra):.2f} µs to the raw ctypes call of the same entry point, "
        f"{min(share):.0%}-{max(share):.0%} of the batch-1 call. The biggest part is not the "
        f"lock: numpy's `.ctypes.data` costs {min(ptr):.2f}-{max(ptr):.2f} µs per array and "
        "`predict` takes it for the input and the output (the raw call reuses a cached "
        f"output pointer); `check_input` is {min(check):.2f}-{max(check):.2f} µs. The fixed "
        "cost is paid once per call, so per row it falls as 1/batch. tl2cgen's `DMatrix` "
        f"alone ({min(dmat):.1f}-{max(dmat):.1f} µs) costs more than all of ForestGate's "
        "per-call overhead, so `CompiledModel.predict` is the lowest-overhead safe call path "
        "measured; only the unchecked raw call is cheaper.\n"
    )


def variants_section(w: Any, views: list[ModelView]) -> None:
    w("## Compile options: time, size and speed per variant\n")
    w(
        "Each variant is a full `compile_model` build. Key: gcc opt level; `pc` = C translation "
        "units (`parallel_comp`); `q1` = threshold quantisation on; `ann` = branch annotation "
        "from 20,000 training rows. *Compile s* is code generation + gcc (2 gcc processes); "
        "*pipeline s* adds loading, verification and writing; *load* is the load average "
        "around the build (- where not recorded): on the shared machine compile times swing "
        "several-fold with it, so compare them only at similar load. "
        "Latency comes from a separate interleaved measurement of all variants of the model: "
        "µs per call at b=1, µs per row above. The fastest in each column is bold; ◀ marks the "
        "default.\n"
    )
    for v in views:
        keys = v.built()
        spec = v.plan["spec"]
        w(
            f"**{v.name}** ({spec['shape']}, {v.plan['stats']['num_nodes']:,} nodes, thresholds "
            f"{v.plan['stats']['threshold_type']}):\n"
        )
        rest = [b for b in v.vbatches if b > 1]
        w(
            "| variant | compile s | pipeline s | load | .so MB | b=1 µs/call | "
            + " | ".join(f"b={b} µs/row" for b in rest)
            + " |"
        )
        w("|---|---|---|---|---|---|" + "---|" * len(rest))
        best = {b: min(keys, key=lambda k, b=b: v.vrow(k, b)) for b in v.vbatches}
        for k in sorted(keys):
            b = v.builds[k]["build"]
            cols = []
            for bb in v.vbatches:
                text = us(v.vrow(k, bb) * (bb if bb == 1 else 1))
                cols.append(f"**{text}**" if best[bb] == k else text)
            mark = " ◀" if k == v.auto else ""
            load = "-" if b.get("loadavg") is None else f"{b['loadavg']:.1f}"
            w(
                f"| `{k}`{mark} | {b['codegen_gcc_s']:.1f} | {b['pipeline_s']:.1f} | {load} | "
                f"{b['so_bytes'] / 1e6:.2f} | " + " | ".join(cols) + " |"
            )
        for k, b in v.builds.items():
            if "error" in b:
                msg = re.sub(r"\s+", " ", b["error"])[:200]
                w(f"| `{k}` | refused by the pipeline: {msg} |" + " |" * (4 + len(v.vbatches)))
        w("")


def _base_key(v: ModelView, opt: str, quantize: bool | None = None) -> str:
    d = v.builds[v.auto]["variant"]
    q = d["quantize"] if quantize is None else quantize
    return f"{opt}-pc{d['parallel_comp']}-{'q1' if q else 'q0'}"


def settings_section(w: Any, views: list[ModelView]) -> None:
    w("## Which settings win for which model sizes\n")
    w(
        "Per row at b=256 and per call at b=1 (µs) by gcc opt level, without quantisation or "
        "annotation, at the default translation-unit count; then the best variant of the "
        "whole sweep and how far the default is from it.\n"
    )
    opts = ("O1", "O2", "O3", "Os")
    w(
        "| model | nodes | .so MB (Os) | "
        + " | ".join(f"-{o} b=256" for o in opts)
        + " | "
        + " | ".join(f"-{o} b=1" for o in opts)
        + " | best b=1 | best b=256 | default / best, b=1 and b=256 |"
    )
    w("|---|---|---|" + "---|" * (2 * len(opts)) + "---|---|---|")
    winners: dict[str, tuple[str, str]] = {}
    for v in views:
        keys = v.built()
        row = [v.vrow(_base_key(v, o, False), 256) for o in opts]
        one = [v.vrow(_base_key(v, o, False), 1) for o in opts]
        b1 = min(keys, key=lambda k: v.vrow(k, 1))
        b256 = min(keys, key=lambda k: v.vrow(k, 256))
        os_key = _base_key(v, "Os", False)
        so = f"{v.so_mb(os_key):.2f}" if os_key in keys else "-"
        w(
            f"| {v.name} | {v.plan['stats']['num_nodes']:,} | {so} | "
            + " | ".join(_best(row, x, us) for x in row)
            + " | "
            + " | ".join(_best(one, x, us) for x in one)
            + f" | `{b1}` {us(v.vrow(b1, 1))} | `{b256}` {us(v.vrow(b256, 256))} | "
            f"{ratio(v.vrow(v.auto, 1) / v.vrow(b1, 1))}, "
            f"{ratio(v.vrow(v.auto, 256) / v.vrow(b256, 256))} |"
        )
        typ = [v.vtyp(_base_key(v, o, False)) for o in opts]
        finite = [(x, o) for x, o in zip(typ, opts, strict=True) if np.isfinite(x)]
        finite1 = [(x, o) for x, o in zip(one, opts, strict=True) if np.isfinite(x)]
        winners[v.name] = (min(finite)[1] if finite else "?", min(finite1)[1] if finite1 else "?")
    w("")
    by_size: dict[str, list[str]] = {}
    for v in views:
        by_size.setdefault(v.plan["spec"]["size"], []).append(v.name)
    for size, names in by_size.items():
        w(
            f"* **{size} models** ({', '.join(names)}): fastest opt level per row (median of "
            "its per-row times at b=16-1024): "
            + ", ".join(f"{n} -{winners[n][0]}" for n in names)
            + "; per call at b=1: "
            + ", ".join(f"{n} -{winners[n][1]}" for n in names)
            + "."
        )
    for v in views:
        for line in _effects(v):
            w(line)
    w("")
    w(
        "**Defaults now in `compiler/codegen.py`** (`resolve_options`), which resolved to the "
        "builds marked ◀: "
        + ", ".join(f"{v.name} `{v.auto}`" for v in views)
        + f". `parallel_comp` = nodes / {codegen.NODES_PER_TRANSLATION_UNIT:,}, clamped to "
        f"2-{codegen.MAX_TRANSLATION_UNITS}; `LARGE_MODEL_NODES` = "
        f"{codegen.LARGE_MODEL_NODES:,}. The module docstring of `compiler/codegen.py` gives "
        "the reasoning.\n"
    )


def _best(values: list[float], x: float, fmt: Any) -> str:
    finite = [v for v in values if np.isfinite(v)]
    if not np.isfinite(x):
        return "-"
    return f"**{fmt(x)}**" if finite and x == min(finite) else fmt(x)


def _load(build: dict[str, Any]) -> str:
    return "" if build.get("loadavg") is None else f" at {build['loadavg']:.1f}"


def _effects(v: ModelView) -> list[str]:
    """Quantisation, annotation and translation-unit effects for one model, as bullet lines."""
    keys = v.built()
    lines = []
    quant = [(k, k.replace("-q1", "-q0")) for k in keys if k.endswith("-q1")]
    quant = [(a, b) for a, b in quant if b in keys]
    if quant:
        gains = {a.split("-")[0]: v.vtyp(b) / v.vtyp(a) for a, b in quant}
        g1 = {a.split("-")[0]: v.vrow(b, 1) / v.vrow(a, 1) for a, b in quant}
        lines.append(
            f"* **Quantisation, {v.name}:** time without / with quantisation, per row (median "
            "over b=16-1024): "
            + ", ".join(f"-{o} {g:.2f}" for o, g in sorted(gains.items()))
            + "; at b=1: "
            + ", ".join(f"-{o} {g:.2f}" for o, g in sorted(g1.items()))
            + " (above 1: quantisation faster). .so "
            f"{np.mean([v.so_mb(b) for _, b in quant]):.2f} -> "
            f"{np.mean([v.so_mb(a) for a, _ in quant]):.2f} MB."
        )
    ann = [(k, k.replace("-ann", "")) for k in keys if k.endswith("-ann")]
    ann = [(a, b) for a, b in ann if b in keys]
    if ann:
        gains = {a.split("-")[0]: v.vtyp(b) / v.vtyp(a) for a, b in ann}
        g1 = {a.split("-")[0]: v.vrow(b, 1) / v.vrow(a, 1) for a, b in ann}
        lines.append(
            f"* **Branch annotation, {v.name}:** time without / with annotation, per row "
            "(median over b=16-1024): "
            + ", ".join(f"-{o} {g:.2f}" for o, g in sorted(gains.items()))
            + "; at b=1: "
            + ", ".join(f"-{o} {g:.2f}" for o, g in sorted(g1.items()))
            + " (above 1: annotation faster)."
        )
    d = v.builds[v.auto]["variant"]
    pattern = re.compile(rf"^{d['opt_level']}-pc(\d+)-{'q1' if d['quantize'] else 'q0'}$")
    tus = sorted((int(m.group(1)), k) for k in keys if (m := pattern.match(k)))
    if len(tus) > 2:
        parts = [
            f"pc{n}: {v.builds[k]['build']['codegen_gcc_s']:.1f} s{_load(v.builds[k]['build'])}, "
            f"{us(v.vtyp(k))} µs/row"
            for n, k in tus
        ]
        lines.append(
            f"* **Translation units, {v.name}** (-{d['opt_level']}; compile s at load average, "
            "per row as median over b=16-1024): " + "; ".join(parts) + "."
        )
    failed = [k for k, b in v.builds.items() if "error" in b]
    if failed:
        lines.append(
            f"* **Refused, {v.name}:** " + ", ".join(f"`{k}`" for k in failed) + " failed the "
            "pipeline's verification (see the variant table): tl2cgen 1.0.0 writes its "
            "quantisation table with 8 significant digits, which cannot hold every float32 "
            "threshold (9 are needed), so inputs equal to such a threshold fall on the wrong "
            "side."
        )
    return lines


def discussion(w: Any, results: dict[str, Any], views: list[ModelView]) -> None:
    w("## What limits the misses\n")
    missed = [r for r in results["targets"] if not r["met"]]
    if not missed:
        w("Every target was met in this run.\n")
    for r in missed:
        w(
            f"* {r['model']}, {r['target']}: ForestGate {us(r['ours_us'])} µs against "
            f"{r['best_other']} {us(r['best_other_us'])} µs ({ratio(r['ratio'])})."
        )
    w("")
    engines = [e for e in dict.fromkeys(e for v in views for e in v.engines) if e != RAW]
    w(
        "Cost per node visited: per-row median at b=256 / mean internal nodes a row passes "
        "through (engines.md measured a floor of about 4 ns per node on a similar Xeon).\n"
    )
    w("| model | nodes/row | " + " | ".join(engines) + " |")
    w("|---|---|" + "---|" * len(engines))
    for v in views:
        nv = v.plan["nodes_visited_per_row"]
        cells = [f"{v.per_row(e, 256) * 1e3 / nv:.1f}" if e in v.engines else "-" for e in engines]
        w(f"| {v.name} | {nv:.0f} | " + " | ".join(cells) + " |")
    w("")
    twice = [
        f"{v.name} {us(v.per_row(FG, 256))} vs {us(v.vrow(v.auto, 256))}"
        for v in views
        if ROW_TARGET_BATCH in v.batches and ROW_TARGET_BATCH in v.vbatches
    ]
    if twice:
        w(
            "**How much to trust a single ratio.** The default build is measured twice in one "
            "run, in the engine table and again minutes later among the compile variants. Per "
            "row at b=256 (engine table vs variant sweep, µs): " + ", ".join(twice) + ". The "
            "difference between the two is this run's noise for that cell; verdicts whose "
            "ratio is nearer the target than that are not settled by one run.\n"
        )
    l2_mb = _l2_per_core_mb(results["environment"]["l2"])
    for v in views:
        for para in _why(v, l2_mb):
            w(para + "\n")


def _closeness(q: float) -> str:
    return "close" if q < 1.25 else "far apart"


def _l2_per_core_mb(text: str) -> float:
    """'4 MiB (2 instances)' -> 2.0 (MiB per core, as lscpu reports it)."""
    m = re.match(r"([\d.]+)\s*(KiB|MiB)(?:\s*\((\d+) instances?\))?", text)
    if not m:
        return float("nan")
    size = float(m.group(1)) / (1024 if m.group(2) == "KiB" else 1)
    return size / int(m.group(3) or 1)


def _why(v: ModelView, l2_mb: float) -> list[str]:
    """Explanations backed by this model's numbers; each is emitted only when it applies."""
    out = []
    flat = v.per_row(FG, 16) / v.per_row(FG, 1024)
    so = v.so_mb(v.auto)
    native = next((e for e in v.engines if v.kind[e] == "native"), None)
    big = so * 1e6 / 2**20 > l2_mb
    if native and native.startswith("xgboost") and big and 1024 in v.batches:
        drop = v.per_row(native, 16) / v.per_row(native, 1024)
        q = v.median(FG, 256) / v.median(native, 256)
        out.append(
            f"**{v.name} per row, ForestGate vs XGBoost.** ForestGate's per-row time is flat "
            f"once the call overhead is amortised (b=16 / b=1024 = {flat:.2f}): every row runs "
            f"through the code of all {v.plan['stats']['num_trees']} trees, and the default "
            f"library is {so:.2f} MB of code against an L2 of {l2_mb:g} MiB per core, so "
            "rows keep re-fetching instructions. XGBoost's `inplace_predict` pays "
            f"{us(v.median(native, 1))} µs per call at b=1 but its per-row time keeps falling "
            f"with batch size (b=16 / b=1024 = {drop:.1f}): it walks blocks of rows tree by "
            "tree with one small loop whose code stays cached, so its data, not its code, is "
            f"what streams. At b=256 ForestGate is {ratio(q)} of XGBoost; at b=1024, "
            f"{ratio(v.median(FG, 1024) / v.median(native, 1024))}. The compile options only "
            "move the constant (smaller code from -Os); closing the gap needs the same blocking "
            "in the compiled path: score a block of rows through one translation unit's trees "
            "before moving to the next (what lleaves' `fblocksize` does), a change to the "
            "batch entry point rather than to a default."
        )
    if any(e.startswith("lleaves") for e in v.engines) and 256 in v.batches:
        lr = "lleaves raw entry"
        node = v.plan["nodes_visited_per_row"]
        out.append(
            f"**{v.name}, ForestGate vs lleaves.** Both are native code called through one "
            f"ctypes call, with similar fixed costs (fit a: ForestGate's raw call "
            f"{us(v.r['fits'][RAW]['a_us'])} µs, lleaves raw {us(v.r['fits'][lr]['a_us'])} µs); "
            "the gap is tree work: "
            f"{v.per_row(RAW, 256) * 1e3 / node:.1f} ns per node for the same .so called raw "
            f"against {v.per_row(lr, 256) * 1e3 / node:.1f} ns for lleaves. tl2cgen's C tests "
            "every node twice (a missing flag in a union, then the value) on 8-byte float64 "
            "entries, while lleaves emits one ordered or unordered float compare per node that "
            "also routes NaN, and blocks trees in groups of 34 with the row loop inside each "
            "block. No compile option reaches that; matching it needs a different code "
            "generator for LightGBM splits (or serving LightGBM models through lleaves)."
        )
        lp = "lleaves predict"
        calls = [b for b in CALL_TARGET_BATCHES if b in v.batches]
        beats = [b for b in calls if v.median(FG, b) < v.median(lp, b)]
        out.append(
            f"At b=1 the two are {_closeness(v.median(RAW, 1) / v.median(lr, 1))}: the same "
            "library called raw takes "
            f"{us(v.median(RAW, 1))} µs against lleaves raw {us(v.median(lr, 1))} µs, and "
            f"`CompiledModel.predict`'s checks, lock and pointer lookups add "
            f"{us(v.median(FG, 1) - v.median(RAW, 1))} µs to that. The lleaves raw entry is "
            "lleaves at its best: no input checks, float64 rows converted before the timer "
            "starts, a preallocated output. Against lleaves' public `predict` (which converts "
            "and checks, like ForestGate), ForestGate is "
            + (
                "faster per call at b=" + ", ".join(str(b) for b in beats)
                if beats
                else "slower at every batch size from 1 to 16"
            )
            + f" ({', '.join(f'b={b} {ratio(v.median(FG, b) / v.median(lp, b))}' for b in calls)})."
        )
    return out
