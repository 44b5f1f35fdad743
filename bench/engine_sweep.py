"""Engine sweep: the compile-option sections of engine.md (each variant's time, size and speed,
and which settings win for which model sizes).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from engine_results import ModelView, ratio, us

from forestgate.compiler import codegen


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


OPTS = ("O1", "O2", "O3", "Os")


def _settings_row(v: ModelView) -> tuple[str, tuple[str, str]]:
    """One model's row of the settings table, and its fastest opt level per row and at b=1."""
    keys = v.built()
    row = [v.vrow(_base_key(v, o, False), 256) for o in OPTS]
    one = [v.vrow(_base_key(v, o, False), 1) for o in OPTS]
    b1 = min(keys, key=lambda k: v.vrow(k, 1))
    b256 = min(keys, key=lambda k: v.vrow(k, 256))
    os_key = _base_key(v, "Os", False)
    so = f"{v.so_mb(os_key):.2f}" if os_key in keys else "-"
    line = (
        f"| {v.name} | {v.plan['stats']['num_nodes']:,} | {so} | "
        + " | ".join(_best(row, x, us) for x in row)
        + " | "
        + " | ".join(_best(one, x, us) for x in one)
        + f" | `{b1}` {us(v.vrow(b1, 1))} | `{b256}` {us(v.vrow(b256, 256))} | "
        f"{ratio(v.vrow(v.auto, 1) / v.vrow(b1, 1))}, "
        f"{ratio(v.vrow(v.auto, 256) / v.vrow(b256, 256))} |"
    )
    typ = [v.vtyp(_base_key(v, o, False)) for o in OPTS]
    finite = [(x, o) for x, o in zip(typ, OPTS, strict=True) if np.isfinite(x)]
    finite1 = [(x, o) for x, o in zip(one, OPTS, strict=True) if np.isfinite(x)]
    return line, (min(finite)[1] if finite else "?", min(finite1)[1] if finite1 else "?")


def settings_section(w: Any, views: list[ModelView]) -> None:
    w("## Which settings win for which model sizes\n")
    w(
        "Per row at b=256 and per call at b=1 (µs) by gcc opt level, without quantisation or "
        "annotation, at the default translation-unit count; then the best variant of the "
        "whole sweep and how far the default is from it.\n"
    )
    w(
        "| model | nodes | .so MB (Os) | "
        + " | ".join(f"-{o} b=256" for o in OPTS)
        + " | "
        + " | ".join(f"-{o} b=1" for o in OPTS)
        + " | best b=1 | best b=256 | default / best, b=1 and b=256 |"
    )
    w("|---|---|---|" + "---|" * (2 * len(OPTS)) + "---|---|---|")
    winners: dict[str, tuple[str, str]] = {}
    for v in views:
        line, winners[v.name] = _settings_row(v)
        w(line)
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


def _gains(v: ModelView, pairs: list[tuple[str, str]]) -> str:
    """Time without / with an option, per opt level: per row (median over b=16-1024), b=1."""
    gains = {a.split("-")[0]: v.vtyp(b) / v.vtyp(a) for a, b in pairs}
    g1 = {a.split("-")[0]: v.vrow(b, 1) / v.vrow(a, 1) for a, b in pairs}
    return (
        ", ".join(f"-{o} {g:.2f}" for o, g in sorted(gains.items()))
        + "; at b=1: "
        + ", ".join(f"-{o} {g:.2f}" for o, g in sorted(g1.items()))
    )


def _pairs(keys: list[str], suffix: str, without: str) -> list[tuple[str, str]]:
    """(variant with an option, the same variant without it) for every such pair built."""
    pairs = [(k, k.replace(suffix, without)) for k in keys if k.endswith(suffix)]
    return [(a, b) for a, b in pairs if b in keys]


def _effects(v: ModelView) -> list[str]:
    """Quantisation, annotation and translation-unit effects for one model, as bullet lines."""
    keys = v.built()
    lines = []
    quant = _pairs(keys, "-q1", "-q0")
    if quant:
        lines.append(
            f"* **Quantisation, {v.name}:** time without / with quantisation, per row (median "
            f"over b=16-1024): {_gains(v, quant)} (above 1: quantisation faster). .so "
            f"{np.mean([v.so_mb(b) for _, b in quant]):.2f} -> "
            f"{np.mean([v.so_mb(a) for a, _ in quant]):.2f} MB."
        )
    ann = _pairs(keys, "-ann", "")
    if ann:
        lines.append(
            f"* **Branch annotation, {v.name}:** time without / with annotation, per row "
            f"(median over b=16-1024): {_gains(v, ann)} (above 1: annotation faster)."
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
