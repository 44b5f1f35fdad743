"""Options: ghz's flags and --config keys merged into one immutable, validated LoadOptions.

Precedence is ghz's: a flag given on the command line beats the config file, which beats the
defaults. Every flag is read as text and converted here, so any bad value ends the run with a
one-line LoadError that names the flag, before a connection is opened.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forestgate.clients.load import LoadError
from forestgate.clients.load.units import duration_value, parse_bytes

SCHEDULES = ("const", "step", "line")
FORMATS = ("summary", "csv", "json", "pretty", "html")
DURATION_STOPS = ("close", "wait", "ignore")
MAX_INT32 = 2**31 - 1


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


@dataclass(frozen=True)
class LoadOptions:
    """One run's settings; durations in integer nanoseconds."""

    host: str = ""
    call: str = ""
    proto: str = ""
    protoset: str = ""
    import_paths: tuple[str, ...] = ()
    cacert: str = ""
    cert: str = ""
    key: str = ""
    cname: str = ""
    skip_tls: bool = False
    insecure: bool = False
    authority: str = ""
    async_: bool = False
    rps: int = 0
    load_schedule: str = "const"
    load_start: int = 0
    load_step: int = 0
    load_end: int = 0
    load_step_duration_ns: int = 0
    load_max_duration_ns: int = 0
    concurrency: int = 50
    concurrency_schedule: str = "const"
    concurrency_start: int = 0
    concurrency_end: int = 0
    concurrency_step: int = 1
    concurrency_step_duration_ns: int = 0
    concurrency_max_duration_ns: int = 0
    total: int = 200
    timeout_ns: int = 20_000_000_000
    duration_ns: int = 0
    max_duration_ns: int = 0
    duration_stop: str = "close"
    data: Any = None  # parsed JSON: an object or a list of objects
    data_file: str = ""
    binary: bool = False
    binary_file: str = ""
    binary_data: bytes | None = None
    metadata: dict[str, str] | None = None
    metadata_file: str = ""
    stream_interval_ns: int = 0
    stream_call_duration_ns: int = 0
    stream_call_count: int = 0
    stream_dynamic_messages: bool = False
    reflect_metadata: dict[str, str] | None = None
    output: str = ""
    format: str = "summary"
    skip_first: int = 0
    count_errors: bool = False
    connections: int = 1
    connect_timeout_ns: int = 10_000_000_000
    keepalive_ns: int = 0
    name: str = ""
    tags: dict[str, str] | None = None
    cpus: int = 1
    debug: str = ""
    enable_compression: bool = False
    lb_strategy: str = ""
    max_recv_message_size: str = ""
    max_send_message_size: str = ""
    disable_template_functions: bool = False
    disable_template_data: bool = False
    procs: int = 1
    config: str = field(default="", compare=False)

    @property
    def time_limit_ns(self) -> int:
        """ghz: -x wins over -z; either stops the run by the clock."""
        return self.max_duration_ns or self.duration_ns

    @property
    def count_limit(self) -> int:
        """ghz: -z alone ignores -n (the total becomes MaxInt32)."""
        return MAX_INT32 if self.duration_ns and not self.max_duration_ns else self.total

    @property
    def open_loop(self) -> bool:
        return self.rps > 0 or self.load_schedule != "const"


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


def from_arguments(args: argparse.Namespace, stdin: Any = None) -> LoadOptions:
    """Defaults <- config file <- flags given; then convert, resolve the data and validate."""
    given = {f.name: getattr(args, f.name) for f in FLAGS if getattr(args, f.name) is not None}
    values: dict[str, Any] = {f.name: f.default for f in FLAGS}
    config_path = getattr(args, "config", None) or ""
    if config_path:
        values.update(CONFIG_DEFAULTS)
        config = read_config(config_path)
        if any(key in given for key in DATA_KEYS):
            config = {k: v for k, v in config.items() if k not in DATA_KEYS}
        values.update(config)
    values.update(given)
    host = args.host if args.host is not None else str(values.pop("host", "") or "")
    values.pop("host", None)
    stdin = stdin if stdin is not None else sys.stdin
    converted = {attribute(BY_NAME[k]): convert(BY_NAME[k], v) for k, v in values.items()}
    converted["data"], converted["binary_data"] = resolve_data(values, stdin)
    converted["metadata"] = resolve_metadata(converted["metadata"], values["metadata-file"])
    options = LoadOptions(host=host.strip(), config=config_path, **converted)
    validate(options)
    return options


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


def resolve_data(values: Mapping[str, Any], stdin: Any) -> tuple[Any, bytes | None]:
    """(JSON data, binary data) from -d / -D / -b / -B; ghz checks the JSON shape up front."""
    given = [k for k in DATA_KEYS if values.get(k) not in (None, "", False)]
    if len(given) > 1:
        raise LoadError(
            f"give one source of request data, not {' and '.join('--' + k for k in given)}"
        )
    binary: bytes | None = None
    data: Any = None
    if values.get("binary"):
        binary = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read()
    elif values.get("binary-file"):
        binary = _read(values["binary-file"], "--binary-file", binary=True)  # type: ignore[assignment]
    elif values.get("data-file"):
        data = _parse_data(_read(values["data-file"], "--data-file"), "--data-file")  # type: ignore[arg-type]
    elif values.get("data") is not None:
        raw = values["data"]
        if raw == "@":
            raw = stdin.read()
        data = _parse_data(raw, "--data") if isinstance(raw, str) else raw
    if data is not None:
        _check_data(data)
    return data, binary


def resolve_metadata(metadata: dict[str, str] | None, path: str) -> dict[str, str] | None:
    if path and metadata is None:
        return json_object(_read(path, "--metadata-file"), what="--metadata-file")
    return metadata


def _parse_data(text: str, what: str) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise LoadError(f"{what}: invalid JSON {shown!r}: {exc}") from None


def _check_data(data: Any) -> None:
    if isinstance(data, dict):
        return
    if not isinstance(data, list):
        raise LoadError("--data: expected a JSON object or an array of objects")
    if not data:
        raise LoadError("--data: the data array must not be empty")
    if not all(isinstance(item, dict) for item in data):
        raise LoadError("--data: every element of the data array must be a JSON object")


def _read(path: str, what: str, *, binary: bool = False) -> str | bytes:
    try:
        return Path(path).read_bytes() if binary else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadError(f"{what}: cannot read {path}: {exc.strerror}") from None


def _bad(what: str, expected: str, value: Any) -> Any:
    shown = repr(value)
    raise LoadError(
        f"{what}: expected {expected}, got {shown[:60]}{'...' if len(shown) > 60 else ''}"
    )


def validate(o: LoadOptions) -> None:
    """ghz's checks (runner/options.go) plus ours, each a one-line error."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise LoadError(message)

    need(bool(o.call), "--call is required: package.Service/Method")
    need(bool(o.host), "the target is required: forestgate load [flags] HOST:PORT")
    need(o.format in FORMATS, f"--format: must be one of {', '.join(FORMATS)}; got {o.format!r}")
    need(
        o.duration_stop in DURATION_STOPS,
        f"--duration-stop: close, wait or ignore; got {o.duration_stop!r}",
    )
    need(not o.skip_tls, "--skipTLS is not supported by gRPC Python: pass --cacert, or --insecure")
    need(bool(o.cert) == bool(o.key), "--cert and --key go together")
    for kind, schedule in (("load", o.load_schedule), ("concurrency", o.concurrency_schedule)):
        need(
            schedule in SCHEDULES,
            f'--{kind}-schedule: must be "const", "step" or "line"; got {schedule!r}',
        )
    if o.load_schedule != "const":
        need(o.load_start > 0, "--load-start must be above 0 for step and line load schedules")
        need(o.load_start != o.load_end, "load start cannot equal load end")
        need(o.load_step != 0, "invalid load step: --load-step must not be 0")
        if o.load_schedule == "step":
            need(
                o.load_step_duration_ns > 0,
                "invalid load step duration: --load-step-duration is required for step",
            )
    if o.concurrency_schedule != "const":
        need(
            o.concurrency_start != o.concurrency_end,
            "concurrency start cannot equal concurrency end",
        )
        need(o.concurrency_step != 0, "invalid concurrency step: --concurrency-step must not be 0")
        if o.concurrency_schedule == "step":
            need(
                o.concurrency_step_duration_ns > 0,
                "invalid concurrency step duration: "
                "--concurrency-step-duration is required for step",
            )
        need(o.procs == 1, "--procs above 1 needs the const concurrency schedule")
    else:
        need(o.concurrency >= 1, "--concurrency must be at least 1")
    need(o.connections >= 1, "--connections must be at least 1")
    need(o.connections <= o.concurrency, "number of connections cannot be greater than concurrency")
    need(o.total >= 1 or o.duration_ns > 0, "--total must be at least 1 (or give --duration)")
    need(o.skip_first <= o.count_limit, "you cannot skip more requests than those run")
    need(not o.async_ or o.open_loop, "--async needs --rps or a step/line --load-schedule")
    need(o.procs >= 1, "--procs must be at least 1")
    need(o.procs <= o.concurrency, "--procs cannot be greater than --concurrency")


def replace(options: LoadOptions, **changes: Any) -> LoadOptions:
    return dataclasses.replace(options, **changes)
