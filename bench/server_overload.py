"""Overload: open-loop load at twice capacity, and what ForestGate does with the excess.

Three runs back to back against one server: 80% of its closed-loop peak (the reference p99),
twice its peak for a long stretch (the overload), then 80% again (the recovery). The server's
RSS is sampled through the overload. The verdict follows issue #12's criteria: no crash, the
excess refused quickly and with RESOURCE_EXHAUSTED (judged apart), accepted calls within 3x the
reference p99, RSS bounded, and normal latency again soon after the overload ends.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from server_cells import GRPC_STATUS, Bench
from server_process import ServerProcess
from server_report import percentiles_us
from server_setup import OVERLOAD_FACTOR, SERIES

NORMAL_SHARE = 0.8  # of the peak: the reference and recovery load
RECOVERY_WINDOW_S = 0.25  # latency is judged per window of this length after the overload
NORMAL_P99_FACTOR = 1.5  # a recovery window is normal when its p99 is within this of reference


def run(bench: Bench, series: str, peak_rps: float, *, seconds: float, rows: int = 1) -> dict:
    """The three runs against `series`' server; returns their summary and the verdict."""
    server = bench.servers[SERIES[series][rows]]
    normal, over = round(NORMAL_SHARE * peak_rps), round(OVERLOAD_FACTOR * peak_rps)
    print(f"overload: {normal} rps, {over} rps for {seconds:.0f} s, {normal} rps", file=sys.stderr)
    reference = _calls(bench.load(server, rows, 3.0, concurrency=0, rate=normal, stop="wait",
                                  report="json"))  # fmt: skip
    rss = _RssSampler(server)
    rss.start()
    try:
        overload = _calls(bench.load(server, rows, seconds, concurrency=0, rate=over,
                                     stop="wait", report="json"))  # fmt: skip
    finally:
        rss.stop()
    recovery = _calls(bench.load(server, rows, 4.0, concurrency=0, rate=normal, stop="wait",
                                 report="json"))  # fmt: skip
    result = {
        "rows": rows,
        "peak_rps": peak_rps,
        "normal_rps": normal,
        "overload_rps": over,
        "overload_s": seconds,
        "reference": _summary(reference),
        "overload": _summary(overload),
        "recovery": _summary(recovery),
        "recovered_after_s": _recovered_after(recovery, reference),
        "rss_mb": rss.summary(),
        "alive": server.proc.poll() is None,
        "series": series,
    }
    result["verdict"] = verdict(result)
    return result


def verdict(r: dict[str, Any]) -> dict[str, bool | None]:
    over, ref = r["overload"], r["reference"]
    refused_p99 = over["refused_p99_us"]
    ok_p99, ref_p99 = over["by_status_us"].get("OK", {}).get("p99"), ref["ok_p99_us"]
    rss = r["rss_mb"]
    refused = sum(n for s, n in over["counts"].items() if s != "OK")
    exhausted = over["counts"].get("RESOURCE_EXHAUSTED", 0)
    return {
        "no crash": r["alive"],
        "the excess refused within 5 ms (p99, any status)": (
            None if refused_p99 is None else refused_p99 <= 5000
        ),
        "the refusals are RESOURCE_EXHAUSTED": bool(refused) and exhausted == refused,
        "accepted p99 within 3x the p99 at 80% load": (
            None if ok_p99 is None or ref_p99 is None else ok_p99 <= 3 * ref_p99
        ),
        "RSS bounded (second half grew < 5%)": rss["second_half_growth"] < 0.05,
        "normal latency within 2 s after": (
            r["recovered_after_s"] is not None and r["recovered_after_s"] <= 2.0
        ),
    }


def _calls(text: str) -> dict[str, Any]:
    """Every call of a `forestgate load -O json` report: end time (s from the first), latency
    (us) and status name."""
    report = json.loads(text)
    details = report["details"] or []
    ends = np.array([_seconds(d["timestamp"]) for d in details])
    lag = report.get("forestgate", {}).get("sendLag", {})
    return {
        "end_s": ends - ends.min() if ends.size else ends,
        "latency_us": np.array([d["latency"] / 1e3 for d in details]),
        "status": np.array([GRPC_STATUS.get(d["status"], d["status"]) for d in details]),
        # How late the driver sent, against its schedule: a driver that cannot offer the
        # rate shows it here, and its lateness is in every latency.
        "send_lag_us": {k: lag[k] / 1e3 for k in ("p50", "p99", "max") if k in lag},
        "driver_cpu": report.get("forestgate", {}).get("cpu", 0) / report["total"]
        if report.get("total")
        else None,
    }


def _seconds(stamp: str) -> float:
    """An RFC 3339 timestamp with nanoseconds as epoch seconds (fromisoformat takes micro)."""
    head, _, rest = stamp.partition(".")
    digits = "".join(c for c in rest if c.isdigit())
    zone = rest[len(digits) :].replace("Z", "+00:00")
    return datetime.fromisoformat(f"{head}.{digits[:6].ljust(6, '0')}{zone}").timestamp()


def _summary(calls: dict[str, Any]) -> dict[str, Any]:
    statuses, counts = np.unique(calls["status"], return_counts=True)
    by_status = {
        str(s): percentiles_us(calls["latency_us"][calls["status"] == s] * 1e3) for s in statuses
    }
    ok = by_status.get("OK", {})
    refused = calls["latency_us"][calls["status"] != "OK"] * 1e3
    return {
        "refused_p99_us": percentiles_us(refused)["p99"],
        "calls": int(calls["status"].size),
        "counts": {str(s): int(n) for s, n in zip(statuses, counts, strict=True)},
        "by_status_us": by_status,
        "ok_p99_us": ok.get("p99"),
        "send_lag_us": calls["send_lag_us"],
        "driver_cpu": calls["driver_cpu"],
    }


def _recovered_after(recovery: dict[str, Any], reference: dict[str, Any]) -> Any:
    """Seconds into the recovery run after which every window's OK p99 stays within
    NORMAL_P99_FACTOR of the reference p99 and nothing is refused; None if never."""
    ok_ref = reference["latency_us"][reference["status"] == "OK"]
    if not ok_ref.size or not recovery["end_s"].size:
        return None
    limit = NORMAL_P99_FACTOR * float(np.percentile(ok_ref, 99))
    edges = np.arange(0, recovery["end_s"].max() + RECOVERY_WINDOW_S, RECOVERY_WINDOW_S)
    normal_from = None
    for start in edges:
        inside = (recovery["end_s"] >= start) & (recovery["end_s"] < start + RECOVERY_WINDOW_S)
        if not inside.any():
            continue  # past the last answer
        ok = inside & (recovery["status"] == "OK")
        bad = bool((inside & (recovery["status"] != "OK")).any())
        healthy = not bad and ok.any() and np.percentile(recovery["latency_us"][ok], 99) <= limit
        if healthy and normal_from is None:
            normal_from = float(start)
        elif not healthy:
            normal_from = None
    return normal_from


class _RssSampler:
    """The server's resident set size every 0.25 s, from /proc, on a thread of its own."""

    def __init__(self, server: ServerProcess) -> None:
        self._status = Path(f"/proc/{server.proc.pid}/status")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.samples_mb: list[float] = []

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            try:
                text = self._status.read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    self.samples_mb.append(int(line.split()[1]) / 1024)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        s = self.samples_mb or [0.0]
        half = len(s) // 2
        first, second = max(s[: half or 1]), max(s[half:] or s)
        return {
            "start": s[0],
            "max": max(s),
            "end": s[-1],
            "second_half_growth": (second - first) / first if first else 0.0,
        }
