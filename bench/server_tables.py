"""Server tables: the closed-loop, open-loop, driver-check and component-cost sections of
server.md.
"""

from __future__ import annotations

from typing import Any

from server_format import ORDER, closed, cpu_per_call, para, pct, table, us
from server_report import LABELS


def closed_tables(results: dict[str, Any]) -> list[str]:
    pooled, run = results["pooled"], results["run"]
    out = [
        "## Closed loop (N calls in flight)",
        "",
        *para(
            "rps over the pooled rounds (each round's own rps in brackets); latencies in us. "
            "CPU is the share of one core over the measured run: the server's is read from "
            "/proc (all its threads) before and after the run, the driver's is what "
            "`forestgate load` reports as its own CPU over the run. For ForestGate, requests "
            "per engine call and engine time per call come from its Prometheus histograms, "
            "read before and after the measured run."
        ),
    ]
    header = ["server", "in flight", "rps", "p50", "p99", "p99.9", "max", "errors"]
    header += ["server CPU", "driver CPU", "server CPU us/call", "requests/batch"]
    header += ["engine us/batch"]
    for n in (1, 16):
        rows = []
        for series in ORDER:
            for c in run["concurrency"]:
                p = closed(pooled, series, n, c)
                if p is None:
                    continue
                lat, b = p["latency_us"], p.get("batching")
                rounds = ", ".join(f"{r:,}" for r in p["rps_rounds"])
                rows.append([
                    LABELS[series], str(c), f"{p['rps']:,.0f} ({rounds})", us(lat["p50"]),
                    us(lat["p99"]), us(lat["p999"]), us(lat["max"]), str(p["error_count"]),
                    pct(p["server_cpu_util"]), pct(p["driver_cpu_util"]), us(cpu_per_call(p)),
                    f"{b['requests_per_batch']:.2f}" if b else "-",
                    us(b["compute_us_per_batch"]) if b else "-",
                ])  # fmt: skip
        out += [f"### {n}-row requests", "", *table(header, rows)]
    return out


def open_tables(results: dict[str, Any]) -> list[str]:
    pooled = results["pooled"]
    out = [
        "## Open loop (fixed offered rate; latency from the scheduled send time)",
        "",
        *para(
            "'answered rps' is OK answers per second from the window's start to the last "
            "answer, so it falls below the offered rate when a server falls behind. Send lag "
            "(scheduled to actually sent, over every call, as `forestgate load` reports it) is "
            "part of the latency; most of it is the time to wake the driver's idle vCPU on "
            "this KVM guest. A server missing from a rate had already been overloaded at a "
            "lower one."
        ),
    ]
    header = ["server", "offered /s", "answered rps", "p50", "p99", "p99.9", "max", "errors"]
    header += ["send lag p50 / p99", "server CPU", "ForestGate queue wait (mean us)"]
    for n in (1, 16):
        rows = []
        for series in ("forestgate", "forestgate_off", "naive", "constant"):
            cells = [p for p in pooled.values() if p["mode"] == "open" and p["rows"] == n]
            for p in sorted((p for p in cells if p["series"] == series), key=lambda p: p["load"]):
                lat, lag, b = p["latency_us"], p.get("send_lag_us", {}), p.get("batching")
                errors = ", ".join(f"{k} {v}" for k, v in p["errors"].items()) or "0"
                rows.append([
                    LABELS[series], f"{p['load']:,.0f}", f"{p.get('answered_rps', p['rps']):,.0f}",
                    us(lat["p50"]), us(lat["p99"]), us(lat["p999"]), us(lat["max"]), errors,
                    f"{us(lag.get('p50'))} / {us(lag.get('p99'))}", pct(p["server_cpu_util"]),
                    us(b["queue_wait_us_mean"]) if b else "-",
                ])  # fmt: skip
        out += [f"### {n}-row requests", "", *table(header, rows)]
    return out


def driver_check(results: dict[str, Any]) -> list[str]:
    pooled, run = results["pooled"], results["run"]
    out = [
        "## Is the driver the bottleneck? (its rate against the constant server)",
        "",
        *para(
            "The constant server does the least work per call, so a slow driver would show "
            "there first. Per cell: the CPU each side spent per call, and the rate the driver "
            "could reach with its core to itself (rps / driver CPU share)."
        ),
    ]
    rows, checked = [], []
    for n in (1, 16):
        for c in run["concurrency"]:
            p = closed(pooled, "constant", n, c)
            if not p or not p["rps"] or not p["driver_cpu_util"]:
                continue
            s, d = p["server_cpu_util"] or 0.0, p["driver_cpu_util"]
            limit = p["rps"] / d
            rows.append([
                str(n), str(c), f"{p['rps']:,.0f}", pct(s), pct(d), f"{s / p['rps'] * 1e6:.0f}",
                f"{d / p['rps'] * 1e6:.0f}", f"{limit:,.0f}",
            ])  # fmt: skip
            if c >= 8:
                checked.append((s, d, limit / p["rps"]))
    header = ["rows/request", "in flight", "rps", "server CPU", "driver CPU"]
    header += ["server CPU us/call", "driver CPU us/call", "driver's own limit (rps)"]
    out += table(header, rows, left=0)
    if checked:
        headroom = min(h for *_, h in checked)
        if all(s >= 0.9 and s > d for s, d, _ in checked):
            out += para(
                "From 8 in flight up the server's core is the busier one in every cell (server "
                f"at least {min(s for s, _, _ in checked):.0%} busy, driver at most "
                f"{max(d for _, d, _ in checked):.0%}), so the server sets the ceiling, not the "
                "driver. The margin is thin: a grpc.aio client costs nearly as much CPU per call "
                "as a grpc.aio server doing nothing, and the driver alone would reach "
                f"{headroom:.2f}x the measured ceiling at worst. The ceiling is accurate to "
                "about that margin; every other server does more work per call and sits "
                "further below the driver's limit (see the driver CPU column above)."
            )
        else:
            out += para(
                "In at least one cell the driver was as busy as the server, so there the "
                "ceiling may be the driver's and ratios against it flatter ForestGate. "
                f"Smallest driver headroom: {headroom:.2f}x."
            )
    return out


def costs(results: dict[str, Any]) -> list[str]:
    rows = [[k, f"{v:,.1f}"] for k, v in results["component_costs_us"].items()]
    return [
        "## What each piece of a call costs in process (median us, server core)",
        "",
        *table(["piece", "us"], rows),
        *para(
            "The plain rows call the same function back to back. In a server, gRPC and Python "
            "run between engine calls and evict the 300 trees' generated code and data from "
            "L1/L2, which the 'caches evicted first' rows reproduce; compare them with the "
            "'engine us/batch' column of the closed-loop tables."
        ),
    ]
