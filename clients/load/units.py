"""Units as ghz writes them: Go durations ("1m30s", "250ms") and humanized byte sizes ("4 MB")."""

from __future__ import annotations

import re

from forestgate.clients.load import LoadError

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_BYTE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mi": 1024**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "ti": 1024**4, "tib": 1024**4,
}  # fmt: skip


def parse_duration(text: str, *, what: str) -> int:
    """A Go duration string (time.ParseDuration) in integer nanoseconds; "0" is allowed bare."""
    raw = text.strip()
    body = raw.lstrip("+")
    if body in ("0", ""):
        if body == "0":
            return 0
        raise LoadError(f"{what}: empty duration")
    if body.startswith("-"):
        raise LoadError(f"{what}: {raw!r} is negative")
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(body):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(body) or position == 0:
        raise LoadError(
            f'{what}: invalid duration {raw!r} (write it like "10s", "500ms" or "1m30s")'
        )
    return int(total)


def duration_value(value: object, *, what: str) -> int:
    """A duration from a flag or a config file value: Go syntax strings, or the number 0."""
    if isinstance(value, bool):
        raise LoadError(f'{what}: expected a duration such as "10s", got {value!r}')
    if isinstance(value, int | float) and value == 0:
        return 0
    if isinstance(value, str):
        return parse_duration(value, what=what)
    raise LoadError(f'{what}: expected a duration such as "10s", got {value!r} (missing unit)')


def parse_bytes(text: str, *, what: str) -> int:
    """A humanized size as ghz's --max-*-message-size takes it: "42 MB", "4MiB", "1048576"."""
    match = _BYTES.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _BYTE_UNITS:
        raise LoadError(f'{what}: invalid size {text!r} (write it like "4 MB" or "4MiB")')
    return int(float(match.group(1)) * _BYTE_UNITS[unit])
