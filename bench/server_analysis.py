"""Server analysis: the profile, the diagnostics and what limits ForestGate, in sentences chosen
by comparing the measured numbers; the mechanisms they name were established by the profile and
the diagnostics of the same run.
"""

from __future__ import annotations

from typing import Any

from server_format import closed, cpu_per_call, dur, para, pct, table, us
from server_report import CEILING_RATIO, LABELS, NAIVE_RATIO, TARGET_CONCURRENCY


def overload_probe(results: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in results.get("diagnostics", []) if c["mode"] == "open"), None)


def overload_note(results: dict[str, Any]) -> list[str]:
    """Where the backlog of an overloaded ForestGate went, from the overload diagnostic."""
    probe = overload_probe(results)
    if not probe or not probe.get("batching"):
        return []
    b, lat = probe["batching"], probe["latency_us"]
    errors = ", ".join(f"{v:,} {k}" for k, v in probe["errors"].items()) or "no errors"
    text = [
        f"**Overload goes around ForestGate's queue.** Offered {probe['rate']:,.0f} calls/s "
        f"({results['run']['overload_factor']:.1f}x its closed-loop peak, 1-row requests), "
        f"calls waited {dur(lat['p50'])} at p50, yet ForestGate's own queue wait averaged "
        f"{b['queue_wait_us_mean']:,.0f} us and its batches held {b['requests_per_batch']:.2f} "
        "requests: the backlog sits in gRPC's core, as calls the Python server has not yet "
        "accepted. There ForestGate's max_queue_rows bound and RESOURCE_EXHAUSTED shedding, "
        "its deadline check before compute and its queue_rows gauge cannot see it. The "
        f"driver got {errors}; ForestGate counted {b['infer_calls_seen']:,.0f} ModelInfer "
        f"calls, {b['infer_not_ok_counted']:,.0f} of them not OK."
    ]
    if probe["errors"].get("CANCELLED"):
        text.append(
            " The CANCELLED calls were refused by gRPC core's own limit on calls waiting to be "
            "accepted (channel argument `grpc.server.max_pending_requests`, 'Too many pending "
            "requests for this server'), invisible to ForestGate's metrics and logs."
        )
    return para(*text)


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


def diagnostics(results: dict[str, Any]) -> list[str]:
    diag = [c for c in results.get("diagnostics", []) if c["mode"] == "closed"]
    out: list[str] = []
    if diag:
        delay = results["run"]["delay_us"]
        rows = []
        for c in diag:
            b, lat = c.get("batching", {}), c["latency_us"]
            rows.append([
                LABELS[c["series"]], str(c["rows"]), str(c["concurrency"]), f"{c['rps']:,.0f}",
                us(lat["p50"]), us(lat["p99"]), f"{b.get('requests_per_batch', 0):.2f}",
                us(b.get("compute_us_per_batch")),
            ])  # fmt: skip
        header = ["server", "rows/request", "in flight", "rps", "p50", "p99", "requests/batch"]
        header += ["engine us/batch"]
        out += [
            f"## Diagnostic: letting a backlog wait for company (`--max-queue-delay-us {delay}`)",
            "",
            *para(
                "One round, back to back with the default server. The delay only holds a "
                "backlog that formed while a batch ran; a request that finds the engine idle "
                "never waits."
            ),
            *table(header, rows),
        ]
    probe = overload_probe(results)
    if probe:
        b, lat = probe.get("batching", {}), probe["latency_us"]
        errors = ", ".join(f"{k} {v:,}" for k, v in probe["errors"].items()) or "0"
        header = ["offered /s", "answered rps", "p50", "p99", "driver saw errors"]
        header += ["ForestGate queue wait (mean us)", "requests/batch"]
        header += ["ModelInfer calls ForestGate counted", "of them not OK"]
        row = [
            f"{probe['rate']:,.0f}", f"{probe.get('answered_rps', probe['rps']):,.0f}",
            us(lat["p50"]), us(lat["p99"]), errors, us(b.get("queue_wait_us_mean")),
            f"{b.get('requests_per_batch', 0):.2f}", f"{b.get('infer_calls_seen', 0):,.0f}",
            f"{b.get('infer_not_ok_counted', 0):,.0f}",
        ]  # fmt: skip
        out += [
            "## Diagnostic: overload (ForestGate, batching on, 1-row requests, open loop)",
            "",
            *table(header, [row], left=0),
            *overload_note(results),
        ]
    return out


def profile_categories(results: dict[str, Any]) -> list[tuple[str, float]]:
    summary_ = results.get("profile", {}).get("summary", {})
    return [(k, v) for k, v in summary_.get("categories", [])]


def delay_effect(results: dict[str, Any]) -> str:
    """One sentence on what the queue-delay diagnostic showed."""
    by = {(c["series"], c["rows"], c["concurrency"]): c for c in results.get("diagnostics", [])}
    pairs = [
        (by[("forestgate", r, c)], d)
        for (series, r, c), d in by.items()
        if series == "forestgate_delay" and ("forestgate", r, c) in by
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
            "event-loop iteration. The batcher dispatches at once when a request finds the "
            "engine idle, and the inline engine call blocks the loop, so no other request "
            "can join meanwhile. The rest of the calls in flight wait inside gRPC's core, not "
            "in ForestGate's queue. " + delay_effect(results)
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
    reach = "out of reach" if n / f < NAIVE_RATIO else "within reach"
    xgb = component.get("xgboost inplace_predict (1 rows)", 0.0)
    out.append(
        f"5. **Against the naive server** both pay the same transport, so the throughput ratio "
        f"is the ratio of CPU per call: {n:.0f} / {f:.0f} = {n / f:.2f}x. XGBoost's "
        f"`inplace_predict` costs {xgb:,.0f} us per 1-row call in process; against that, "
        f"{NAIVE_RATIO:.0f}x is {reach} while ForestGate spends {f:.0f} us per call."
    )
    return [*out, ""]
