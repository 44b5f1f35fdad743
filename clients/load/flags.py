"""Flags: ghz's command line as one table, which also names the --config keys and converts values.

Every flag is read as text (a config file gives JSON values) and converted here, so a bad value
is a one-line LoadError naming the flag rather than argparse's usage dump.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forestgate.clients.load import LoadError
from forestgate.clients.load.units import duration_value, parse_bytes


@dataclass(frozen=True)
class Flag:
    name: str  # the long flag and the config-file key
    kind: str  # str | uint | int | bool | duration | json | paths | bytes
    default: Any
    help: str
    short: str | None = None


FLAGS: tuple[Flag, ...] = (
    Flag(
        "proto", "str", "", "the .proto file (compiled at start-up); else --protoset or reflection"
    ),
    Flag(
        "protoset", "str", "", "a FileDescriptorSet (protoc --descriptor_set_out --include_imports)"
    ),
    Flag("call", "str", "", "the method: package.Service/Method or package.Service.Method"),
    Flag("import-paths", "paths", (), "comma-separated proto import paths", "i"),
    Flag("cacert", "str", "", "trusted root certificates (PEM) for TLS"),
    Flag("cert", "str", "", "client certificate (PEM); needs --key"),
    Flag("key", "str", "", "client private key (PEM); needs --cert"),
    Flag("cname", "str", "", "server name override for TLS verification"),
    Flag("skipTLS", "bool", False, "skip TLS verification (not supported by gRPC Python)"),
    Flag("insecure", "bool", False, "plaintext connection (ForestGate serves plaintext)"),
    Flag("authority", "str", "", "the :authority header"),
    Flag("async", "bool", False, "open loop without a worker bound: each due call is sent at once"),
    Flag("rps", "uint", 0, "requests per second for the const schedule (0 = unlimited)", "r"),
    Flag("load-schedule", "str", "const", "const, step or line"),
    Flag("load-start", "uint", 0, "step/line: the starting rate"),
    Flag("load-step", "int", 0, "step: rate change per step; line: the slope per second"),
    Flag("load-end", "uint", 0, "step/line: the rate held once reached"),
    Flag("load-step-duration", "duration", 0, "step: how long each rate lasts"),
    Flag("load-max-duration", "duration", 0, "step/line: the rate is held after this long"),
    Flag("concurrency", "uint", 50, "number of workers (calls in flight)", "c"),
    Flag("concurrency-schedule", "str", "const", "const, step or line"),
    Flag("concurrency-start", "uint", 0, "step/line: workers at the start"),
    Flag("concurrency-end", "uint", 0, "step/line: workers at the end"),
    Flag("concurrency-step", "int", 1, "step: workers added per step; line: per second"),
    Flag("concurrency-step-duration", "duration", 0, "step: time between worker changes"),
    Flag("concurrency-max-duration", "duration", 0, "step/line: stop changing workers after this"),
    Flag("total", "uint", 200, "number of requests (ignored with --duration)", "n"),
    Flag("timeout", "duration", "20s", "per-request deadline; 0 = none", "t"),
    Flag("duration", "duration", 0, "run this long, ignoring --total, e.g. 10s", "z"),
    Flag("max-duration", "duration", 0, "stop at --total or after this long", "x"),
    Flag("duration-stop", "str", "close", "at the time limit: close (cancel), wait or ignore"),
    Flag(
        "data", "data", None, "request as JSON (object, or array sent round-robin); @ = stdin", "d"
    ),
    Flag("data-file", "str", "", "file holding the JSON request data", "D"),
    Flag("binary", "bool", False, "request as protobuf binary from stdin", "b"),
    Flag("binary-file", "str", "", "file holding protobuf binary request(s)", "B"),
    Flag("metadata", "json", None, "request metadata as a JSON object", "m"),
    Flag("metadata-file", "str", "", "file holding the metadata JSON", "M"),
    Flag("stream-interval", "duration", 0, "streaming only (accepted, unused: unary calls)"),
    Flag("stream-call-duration", "duration", 0, "streaming only (accepted, unused)"),
    Flag("stream-call-count", "uint", 0, "streaming only (accepted, unused)"),
    Flag("stream-dynamic-messages", "bool", False, "streaming only (accepted, unused)"),
    Flag("reflect-metadata", "json", None, "metadata sent on reflection calls only"),
    Flag("output", "str", "", "write the report here instead of stdout", "o"),
    Flag("format", "str", "summary", "summary, csv, json, pretty or html", "O"),
    Flag("skipFirst", "uint", 0, "leave the first N results out of the report"),
    Flag(
        "count-errors", "bool", False, "count non-OK calls in fastest/slowest/histogram/percentiles"
    ),
    Flag("connections", "uint", 1, "gRPC connections; workers are spread over them"),
    Flag("connect-timeout", "duration", "10s", "time to connect before giving up"),
    Flag("keepalive", "duration", 0, "keepalive ping interval; 0 = off"),
    Flag("name", "str", "", "a name for the run"),
    Flag("tags", "json", None, "JSON object of string tags copied into the report"),
    Flag(
        "cpus", "uint", os.cpu_count() or 1, "recorded in the report (use --procs to spread load)"
    ),
    Flag("debug", "str", "", "debug log path (accepted, unused)"),
    Flag("enable-compression", "bool", False, "gzip requests", "e"),
    Flag("lb-strategy", "str", "", "client load balancing policy, e.g. round_robin"),
    Flag("max-recv-message-size", "bytes", "", "largest response accepted, e.g. 64 MB"),
    Flag("max-send-message-size", "bytes", "", "largest request sent, e.g. 64 MB"),
    Flag("disable-template-functions", "bool", False, "no template functions in data/metadata"),
    Flag("disable-template-data", "bool", False, "no templating at all in data/metadata"),
    Flag("procs", "uint", 1, "ForestGate: spread the load over this many processes"),
)
BY_NAME = {flag.name: flag for flag in FLAGS}
# ghz's Config struct gives these other defaults when a config file is read.
CONFIG_DEFAULTS = {"concurrency-start": 1, "concurrency-step": 0}
DATA_KEYS = ("data", "data-file", "binary", "binary-file")
METAVARS = {"uint": "N", "int": "N", "duration": "DURATION", "json": "JSON", "paths": "PATHS",
            "bytes": "SIZE"}  # fmt: skip


def attribute(flag: Flag) -> str:
    base = {"skipTLS": "skip_tls", "skipFirst": "skip_first", "async": "async_"}.get(flag.name)
    name = base or flag.name.replace("-", "_")
    return f"{name}_ns" if flag.kind == "duration" else name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", nargs="?", default=None, help="HOST:PORT of the server")
    parser.add_argument("--config", default=None, help="JSON or TOML file; keys = long flag names")
    for flag in FLAGS:
        names = [f"--{flag.name}"] + ([f"-{flag.short}"] if flag.short else [])
        default = flag.default
        shown = default not in (None, "", (), False, 0, "0", "const", "close", "summary")
        text = f"{flag.help} (default: {default})" if shown else flag.help
        if flag.kind == "bool":
            parser.add_argument(
                *names, dest=flag.name, action="store_true", default=None, help=text
            )
        else:
            metavar = METAVARS.get(flag.kind, "TEXT")
            parser.add_argument(*names, dest=flag.name, default=None, metavar=metavar, help=text)


def read_config(path: str) -> dict[str, Any]:
    """A ghz config file: JSON, or TOML for a .toml name; keys are long flag names."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        loaded = tomllib.loads(text) if path.endswith(".toml") else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise LoadError(f"config file {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise LoadError(f"config file {path}: expected an object of flag names to values")
    unknown = sorted(set(loaded) - set(BY_NAME) - {"host"})
    if unknown:
        raise LoadError(
            f"config file {path}: unknown key {unknown[0]!r} (keys are long flag names)"
        )
    return loaded


def convert(flag: Flag, value: Any) -> Any:
    """A flag's text (or a config file's JSON value) as the type LoadOptions holds."""
    return _CONVERTERS[flag.kind](value, f"--{flag.name}", flag.kind)


def _as_str(value: Any, what: str, _kind: str) -> Any:
    return value if isinstance(value, str) or value is None else _bad(what, "a string", value)


def _as_bool(value: Any, what: str, _kind: str) -> Any:
    return value if isinstance(value, bool) else _bad(what, "true or false", value)


def _as_int(value: Any, what: str, kind: str) -> Any:
    number = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if not isinstance(number, int) or isinstance(number, bool):
        return _bad(what, "an integer", value)
    if kind == "uint" and number < 0:
        return _bad(what, "a non-negative integer", value)
    return number


def _as_paths(value: Any, what: str, _kind: str) -> Any:
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, list | tuple) and all(isinstance(p, str) for p in value):
        return tuple(value)
    return _bad(what, "a comma-separated list of paths", value)


def _as_bytes(value: Any, what: str, _kind: str) -> Any:
    if isinstance(value, str) and value.strip():
        parse_bytes(value, what=what)  # checked now, applied to the channels
    return str(value)


_CONVERTERS: dict[str, Any] = {
    "str": _as_str,
    "bool": _as_bool,
    "uint": _as_int,
    "int": _as_int,
    "duration": lambda value, what, _kind: duration_value(value, what=what),
    "paths": _as_paths,
    "bytes": _as_bytes,
    "json": lambda value, what, _kind: None if value is None else json_object(value, what=what),
    "data": lambda value, _what, _kind: value,  # text or parsed JSON: resolve_data reads it
}


def json_object(value: Any, *, what: str) -> dict[str, str]:
    """A JSON object of strings (metadata, tags), from text or an already parsed value."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError as exc:
            raise LoadError(f"{what}: invalid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise LoadError(f'{what}: expected a JSON object of strings, e.g. {{"key": "value"}}')
    return value


def _bad(what: str, expected: str, value: Any) -> Any:
    shown = repr(value)
    raise LoadError(
        f"{what}: expected {expected}, got {shown[:60]}{'...' if len(shown) > 60 else ''}"
    )
