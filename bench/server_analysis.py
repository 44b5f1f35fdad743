"""Server analysis: the profile, the diagnostics and what limits ForestGate, in sentences chosen
by comparing the measured numbers; the mechanisms they name were established by the profile and
the diagnostics of the same run.
"""

from __future__ import annotations

from typing import Any

from server_format import closed, cpu_per_call, para, pct, table
from server_report import CEILING_RATIO, NAIVE_RATIO, TARGET_CONCURRENCY

ONE_ROW_NAIVE_RATIO = NAIVE_RATIO[1]


def profile(results: dict[str, Any]) -> list[str]:
    prof = results.get("profile", {})
    out = [
        f"## Profile: ForestGate, 1-row requests, {TARGET_CONCURRENCY} in flight (py-spy --native)",
        "",
    ]
    if "summary" not in prof:
        return [*out, *para(f"No profile: {prof.get('error', 'not run')}.")]
    s, cell = prof["summary"], prof["cell"]
    out += para(
        f"py-spy sampled the server for {prof['seconds']:.0f} s at {prof['rate_hz']} Hz "
        f"({s['samples']:,} samples over all threads) while the driver held "
        f"{TARGET_CONCURRENCY} calls in flight: {cell['rps']:,.0f} rps meanwhile (py-spy pauses "
        f"the process to sample), server CPU {pct(cell['server_cpu_util'])}. The event-loop "
        f"thread was idle in epoll in {s['main_idle_share']:.0%} of its samples; the shares "
        "below are of its busy samples."
    )
    threads = sorted(prof.get("thread_cpu_util", {}).items(), key=lambda kv: -kv[1])
    if threads:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in threads if v >= 0.005)
        out += para(
            f"CPU by thread during the profile (share of one core): {shares}. The event_engine "
            "threads are gRPC core's network I/O; the other 'forestgate' threads are gRPC's "
            "completion-queue poller and the (idle) metrics endpoint."
        )
    out += table(
        ["event-loop thread: innermost recognisable frame", "share"],
        [[k, f"{v:.1%}"] for k, v in s["categories"]],
    )
    out += table(
        ["ForestGate code, inclusive (samples with this frame on the stack)", "share"],
        [[f"`{k}`", f"{v:.1%}"] for k, v in s["forestgate_inclusive"]],
    )
    out += table(
        ["top frames by self time (event-loop thread)", "share"],
        [[f"`{k[:110]}`", f"{v:.1%}"] for k, v in s["top_self"][:15]],
    )
    return out


def profile_categories(results: dict[str, Any]) -> list[tuple[str, float]]:
    summary_ = results.get("profile", {}).get("summary", {})
    return [(k, v) for k, v in summary_.get("categories", [])]


def delay_effect(results: dict[str, Any]) -> str:
    """One sentence on what the queue-delay diagnostic showed."""
    by = {(c["series"], c["rows"], c["concurrency"]): c for c in results.get("diagnostics", [])}
    pairs = [
        (by[("forestgate_pinned", r, c)], d)
        for (series, r, c), d in by.items()
        if series == "forestgate_delay" and ("forestgate_pinned", r, c) in by
    ]
    if not pairs:
        return ""
    gains = [d["rps"] / b["rps"] - 1 for b, d in pairs if b["rps"]]
    per_batch = max(d.get("batching", {}).get("requests_per_batch", 0) for _, d in pairs)
    if per_batch < 1.1:
        return (
            "Letting a backlog wait (the diagnostic above) does not help: batches still held at "
            f"most {per_batch:.2f} requests, because no backlog forms in the batcher to wait, "
            f"and throughput moved {min(gains):+.0%} to {max(gains):+.0%}, within this "
            "machine's noise."
        )
    return (
        f"Letting a backlog wait (the diagnostic above) moved throughput {min(gains):+.0%} to "
        f"{max(gains):+.0%}, with batches of up to {per_batch:.2f} requests."
    )


def _pinned_note(results: dict[str, Any], c: int) -> str:
    """What moving the engine thread to the other core did, from the pinned series."""
    pooled = results["pooled"]
    pinned, default = (closed(pooled, s, 1, c) for s in ("forestgate_pinned", "forestgate"))
    if not pinned or not default or not pinned.get("batching"):
        return ""
    per = pinned["batching"]["requests_per_batch"]
    return (
        f"With the engine thread on the other core, the loop keeps taking calls while a batch "
        f"computes: batches held {per:.2f} requests and throughput was "
        f"{pinned['rps'] / default['rps']:.2f}x the default's ({pinned['rps']:,.0f} against "
        f"{default['rps']:,.0f} rps), using that core too. "
    )


def _transport_and_engine(
    constant_us: float, batch: dict[str, float], component: dict[str, float]
) -> list[str]:
    """Points 1 and 2: the transport's share of the budget, and the engine's cost in a server."""
    budget = constant_us / CEILING_RATIO - constant_us
    engine = batch.get("compute_us_per_batch", 0.0)
    hot = component.get("CompiledModel.predict (1 rows)", 0.0)
    cold = component.get("CompiledModel.predict (1 rows), caches evicted first", 0.0)
    return [
        f"1. **The transport is most of the budget.** gRPC Python doing nothing costs "
        f"{constant_us:.0f} us per call, so {CEILING_RATIO:.0%} of the ceiling leaves ForestGate "
        f"{budget:.0f} us per call for everything else: parsing, checks, queueing, the engine "
        "and the response.",
        f"2. **The engine costs more in a server than in a loop.** One row through the 300 "
        f"trees takes {hot:.0f} us back to back but {cold:.0f} us once the caches have been "
        f"evicted, and {engine:.0f} us per engine call inside ForestGate under load. gRPC and "
        "Python run between calls and push the model's generated code and data out of L1/L2. "
        f"That alone is more than the {budget:.0f} us budget, unless batches spread it over "
        "many rows.",
    ]


def limits(results: dict[str, Any]) -> list[str]:
    pooled, component = results["pooled"], results["component_costs_us"]
    c = TARGET_CONCURRENCY
    fg, const, direct, naive = (
        closed(pooled, s, 1, c) for s in ("forestgate", "constant", "direct", "naive")
    )
    out = ["## What limits ForestGate here", ""]
    if not (fg and const and direct and naive and fg["rps"] and const["rps"] and direct["rps"]):
        return [*out, *para("Not enough cells to analyse.")]
    f, k, d, n = (cpu_per_call(p) for p in (fg, const, direct, naive))
    batch = fg.get("batching", {})
    out += para(
        f"At {c} in flight with 1-row requests every server is CPU-bound on its one core, so "
        "throughput is the inverse of the CPU each call costs: constant server "
        f"{k:.0f} us, bare server with the compiled engine {d:.0f} us, ForestGate {f:.0f} us, "
        f"naive XGBoost {n:.0f} us."
    )
    out += _transport_and_engine(k, batch, component)
    if batch:
        out.append(
            f"3. **The batches held {batch.get('requests_per_batch', 0):.2f} requests** at {c} "
            "in flight, so nothing was spread. grpc.aio accepts one RPC at a time: a "
            "request_call and then a message read, each a trip through gRPC's completion-queue "
            "thread and a loop wake-up (`_server_main_loop` in grpc's "
            "`_cython/_cygrpc/aio/server.pyx.pxi` keeps one `grpc_server_request_call` "
            "outstanding). New calls therefore reach the handler about one per "
            "event-loop iteration, and each finds nothing else in flight: the default server "
            "scores it at once on the loop (the idle fast path), which then takes no call "
            "until it is done. The rest of the calls in flight wait inside gRPC's core, not "
            "in ForestGate's queue. " + _pinned_note(results, c) + delay_effect(results)
        )
    getpid = sum(v for name, v in profile_categories(results) if "getpid" in name)
    asyncio_note = (
        f" {getpid:.0%} of the event-loop thread's busy time is getpid() system calls made by "
        "asyncio's get_running_loop, which on Python 3.11 checks the process id on every "
        "call (3.12 no longer does)."
        if getpid >= 0.02
        else ""
    )
    out.append(
        f"4. **ForestGate's serving layer costs {f - d:.0f} us per call** over the bare server "
        "with the same engine. That covers the status wrapper and parse from bytes, the codec "
        "checks, the deadline, the batcher's future and dispatcher hand-off, the per-call and "
        "per-batch Prometheus updates and the response; the profile splits it." + asyncio_note
    )
    reach = "out of reach" if n / f < ONE_ROW_NAIVE_RATIO else "within reach"
    xgb = component.get("xgboost inplace_predict (1 rows)", 0.0)
    out.append(
        f"5. **Against the naive server** both pay the same transport, so the throughput ratio "
        f"is the ratio of CPU per call: {n:.0f} / {f:.0f} = {n / f:.2f}x. XGBoost's "
        f"`inplace_predict` costs {xgb:,.0f} us per 1-row call in process; against that, "
        f"{ONE_ROW_NAIVE_RATIO:.0f}x is {reach} while ForestGate spends {f:.0f} us per call."
    )
    return [*out, ""]
