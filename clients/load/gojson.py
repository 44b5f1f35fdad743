"""Go JSON: the bytes Go's encoding/json writes for a ghz report, so diffs against ghz are empty.

Go differs from Python's json module in floats (shortest digits, no ".0", exponent only below
1e-6 or from 1e21, "e-7" not "e-07"), in escaping <, > and & in strings, and in sorting map keys
(but not struct fields). `pretty` is json.Indent with two spaces, as ghz's -O pretty.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from forestgate.clients.load.report import Details, GoMap, Report
from forestgate.clients.load.template import rfc3339

_HTML = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def go_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"json: unsupported value: {value}")
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        text = repr(value)
        if "e-0" in text:
            text = text.replace("e-0", "e-")
        return text
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def go_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False).translate(_HTML)


def encode(value: Any, indent: str | None = None, level: int = 0) -> str:
    return "".join(_pieces(value, indent, level))


def _pieces(value: Any, indent: str | None, level: int) -> Iterator[str]:
    if value is None or isinstance(value, bool | int | float | str):
        yield _scalar(value)
    elif isinstance(value, dict):
        items = sorted(value.items()) if isinstance(value, GoMap) else list(value.items())
        yield from _object(items, indent, level)
    elif isinstance(value, list | tuple):
        yield from _array(value, indent, level)
    elif isinstance(value, Details):
        yield from _details(value, indent, level)
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def _scalar(value: bool | int | float | str | None) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    return go_string(value)


def _object(items: list[tuple[str, Any]], indent: str | None, level: int) -> Iterator[str]:
    if not items:
        yield "{}"
        return
    inner, outer = _breaks(indent, level)
    yield "{"
    for i, (key, item) in enumerate(items):
        yield ("," if i else "") + inner + go_string(key) + (": " if indent else ":")
        yield from _pieces(item, indent, level + 1)
    yield outer + "}"


def _array(values: list[Any] | tuple[Any, ...], indent: str | None, level: int) -> Iterator[str]:
    if not values:
        yield "[]"
        return
    inner, outer = _breaks(indent, level)
    yield "["
    for i, item in enumerate(values):
        yield ("," if i else "") + inner
        yield from _pieces(item, indent, level + 1)
    yield outer + "]"


def _breaks(indent: str | None, level: int) -> tuple[str, str]:
    if indent is None:
        return "", ""
    return "\n" + indent * (level + 1), "\n" + indent * level


def _details(details: Details, indent: str | None, level: int) -> Iterator[str]:
    """ResultDetail entries: timestamp (RFC3339Nano, local), latency ns, error, status."""
    from forestgate.clients.load.results import GO_STATUS

    if not len(details):
        yield "[]"
        return
    statuses = [go_string(s) for s in GO_STATUS]
    errors = [go_string(t) for t in details.error_texts]
    inner, outer = _breaks(indent, level)
    field, close = _breaks(indent, level + 1)
    colon = ": " if indent else ":"
    seconds_cache: dict[int, tuple[str, str]] = {}
    yield "["
    for i in range(len(details)):
        wall = int(details.end_wall_ns[i])
        stamp = _stamp(wall, seconds_cache)
        yield (
            f'{"," if i else ""}{inner}{{{field}"timestamp"{colon}"{stamp}",'
            f'{field}"latency"{colon}{int(details.latency_ns[i])},'
            f'{field}"error"{colon}{errors[int(details.error[i])]},'
            f'{field}"status"{colon}{statuses[int(details.status[i])]}{close}}}'
        )
    yield outer + "]"


def _stamp(wall_ns: int, cache: dict[int, tuple[str, str]]) -> str:
    seconds, fraction = divmod(wall_ns, 1_000_000_000)
    parts = cache.get(seconds)
    if parts is None:
        whole = rfc3339(seconds * 1_000_000_000)
        cut = 19  # len("2006-01-02T15:04:05")
        parts = cache[seconds] = (whole[:cut], whole[cut:])
    if fraction:
        return f"{parts[0]}.{f'{fraction:09d}'.rstrip('0')}{parts[1]}"
    return parts[0] + parts[1]


def report_json(report: Report, *, pretty: bool = False) -> str:
    """ghz's Report.MarshalJSON: "date" first, then the struct fields in order."""
    fields: dict[str, Any] = {"date": rfc3339(report.date_ns)}
    if report.name:
        fields["name"] = report.name
    if report.end_reason:
        fields["endReason"] = report.end_reason
    fields.update(
        options=report.options,
        count=report.count,
        total=report.total_ns,
        average=report.average_ns,
        fastest=report.fastest_ns,
        slowest=report.slowest_ns,
        rps=float(report.rps),
        errorDistribution=report.error_distribution,
        statusCodeDistribution=report.status_distribution,
        latencyDistribution=None
        if report.latency_distribution is None
        else [{"percentage": p, "latency": ns} for p, ns in report.latency_distribution],
        histogram=None
        if report.histogram is None
        else [
            {"mark": float(m), "count": c, "frequency": float(f)} for m, c, f in report.histogram
        ],
        details=report.details,
    )
    if report.tags:
        fields["tags"] = report.tags
    fields["forestgate"] = report.forestgate
    return encode(fields, "  " if pretty else None)
