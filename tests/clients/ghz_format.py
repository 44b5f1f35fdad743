"""A reader of ghz's JSON report written from its specification (serving.md §3.3/§3.4, ghz's
runner/reporter.go field tags), not from our code: field names, order, JSON types and units."""

from __future__ import annotations

import re
from typing import Any

TOP_LEVEL = [
    "date", "name", "endReason", "options", "count", "total", "average", "fastest", "slowest",
    "rps", "errorDistribution", "statusCodeDistribution", "latencyDistribution", "histogram",
    "details", "tags",
]  # fmt: skip
OMIT_EMPTY = {"name", "endReason", "tags"}
GO_STATUS = {
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
}  # fmt: skip
PERCENTAGES = [10, 25, 50, 75, 90, 95, 99]
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
# Options: every key runner/reporter.go's Options may write; the ones without omitempty always.
OPTION_KEYS = {
    "call", "host", "proto", "protoset", "import-paths", "enable-compression", "cacert", "cert",
    "key", "cname", "skipTLS", "insecure", "authority", "rps", "load-schedule", "load-start",
    "load-end", "load-step", "load-step-duration", "load-max-duration", "concurrency",
    "concurrency-schedule", "concurrency-start", "concurrency-end", "concurrency-step",
    "concurrency-step-duration", "concurrency-max-duration", "total", "async", "connections",
    "duration", "timeout", "dial-timeout", "keepalive", "data", "binary", "metadata", "CPUs",
    "name", "skipFirst", "count-errors",
}  # fmt: skip
OPTION_ALWAYS = {
    "insecure", "load-schedule", "load-start", "load-end", "load-step", "load-step-duration",
    "load-max-duration", "concurrency-schedule", "concurrency-start", "concurrency-end",
    "concurrency-step", "concurrency-step-duration", "concurrency-max-duration", "binary", "CPUs",
}  # fmt: skip
OPTION_NS = {
    "load-step-duration", "load-max-duration", "concurrency-step-duration",
    "concurrency-max-duration", "duration", "timeout", "dial-timeout", "keepalive",
}  # fmt: skip


class FormatError(AssertionError):
    pass


def _int(value: Any, where: str) -> int:
    if type(value) is not int:
        raise FormatError(f"{where}: expected an integer, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if type(value) not in (int, float):
        raise FormatError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _str_map(value: Any, where: str, values: type) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"{where}: expected an object")
    for key, item in value.items():
        if not isinstance(key, str) or type(item) is not values:
            raise FormatError(f"{where}[{key!r}]: expected {values.__name__}")
    return value


def parse(report: dict[str, Any], *, extra_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Validate a decoded ghz JSON report; returns it. Unknown top-level keys are allowed only
    when named in extra_keys (ghz readers skip them), and only after ghz's own."""
    _check_keys(report, extra_keys)
    _check_options(report["options"])
    count = _int(report["count"], "count")
    for key in ("total", "average", "fastest", "slowest"):
        _int(report[key], f"{key} (ns)")
    _number(report["rps"], "rps")
    _str_map(report["errorDistribution"], "errorDistribution", int)
    _check_statuses(report["statusCodeDistribution"], count)
    if report["latencyDistribution"] is not None:
        _check_latencies(report["latencyDistribution"])
    if report["histogram"] is not None:
        _check_histogram(report["histogram"])
    if report["details"] is not None:
        _check_details(report["details"])
    if "tags" in report:
        _str_map(report["tags"], "tags", str)
    return report


def _check_keys(report: dict[str, Any], extra_keys: tuple[str, ...]) -> None:
    keys = list(report)
    known = [k for k in keys if k in TOP_LEVEL]
    if known != [k for k in TOP_LEVEL if k in report]:
        raise FormatError(f"top-level keys out of ghz's order: {known}")
    for key in keys:
        if key not in TOP_LEVEL and key not in extra_keys:
            raise FormatError(f"unknown top-level key {key!r}")
    missing = [k for k in TOP_LEVEL if k not in report and k not in OMIT_EMPTY]
    if missing:
        raise FormatError(f"missing keys: {missing}")
    if not isinstance(report["date"], str) or not RFC3339.match(report["date"]):
        raise FormatError(f"date: not RFC3339: {report['date']!r}")
    if "endReason" in report and report["endReason"] not in ("normal", "cancel", "timeout"):
        raise FormatError(f"endReason: {report['endReason']!r}")


def _check_options(options: Any) -> None:
    if not isinstance(options, dict) or set(options) - OPTION_KEYS:
        raise FormatError(f"options: unknown keys {set(options) - OPTION_KEYS}")
    if OPTION_ALWAYS - set(options):
        raise FormatError(f"options: missing {OPTION_ALWAYS - set(options)}")
    for key in OPTION_NS & set(options):
        _int(options[key], f"options.{key} (ns)")


def _check_statuses(value: Any, count: int) -> None:
    statuses = _str_map(value, "statusCodeDistribution", int)
    if set(statuses) - GO_STATUS:
        raise FormatError(
            f"statusCodeDistribution: not Go status names: {set(statuses) - GO_STATUS}"
        )
    if sum(statuses.values()) != count:
        raise FormatError("statusCodeDistribution does not add up to count")


def _check_latencies(latencies: list[dict[str, Any]]) -> None:
    if len(latencies) != len(PERCENTAGES):
        raise FormatError("latencyDistribution: one entry per percentile 10 ... 99")
    for expected, entry in zip(PERCENTAGES, latencies, strict=True):
        if entry.get("percentage") not in (expected, 0):  # ghz writes {0, 0} for a 0 value
            raise FormatError(f"latencyDistribution: {entry!r} where {expected} was due")
        if list(entry) != ["percentage", "latency"]:
            raise FormatError(f"latencyDistribution entry keys: {list(entry)}")
        _int(entry["percentage"], "percentage")
        _int(entry["latency"], "latency (ns)")


def _check_histogram(histogram: list[dict[str, Any]]) -> None:
    if len(histogram) != 11:
        raise FormatError("histogram: 11 buckets")
    for bucket in histogram:
        if list(bucket) != ["mark", "count", "frequency"]:
            raise FormatError(f"histogram bucket keys: {list(bucket)}")
        _number(bucket["mark"], "mark (s)")
        _int(bucket["count"], "count")
        _number(bucket["frequency"], "frequency")


def _check_details(details: list[dict[str, Any]]) -> None:
    for entry in details:
        if list(entry) != ["timestamp", "latency", "error", "status"]:
            raise FormatError(f"details entry keys: {list(entry)}")
        if not RFC3339_NANO.match(entry["timestamp"]):
            raise FormatError(f"details timestamp: {entry['timestamp']!r}")
        _int(entry["latency"], "details latency (ns)")
        if not isinstance(entry["error"], str) or entry["status"] not in GO_STATUS:
            raise FormatError(f"details entry: {entry!r}")
