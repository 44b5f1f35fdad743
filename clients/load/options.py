"""Options: the flags and --config keys of one run merged into an immutable, validated LoadOptions.

Precedence is ghz's: a flag given on the command line beats the config file, which beats the
defaults. The request data is read and shape-checked here, and ghz's cross-flag rules (and
ours) are checked, each failing with a one-line LoadError before a connection is opened.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forestgate.clients.load import LoadError
from forestgate.clients.load.flags import (
    BY_NAME,
    CONFIG_DEFAULTS,
    DATA_KEYS,
    FLAGS,
    attribute,
    convert,
    json_object,
    read_config,
)

SCHEDULES = ("const", "step", "line")
FORMATS = ("summary", "csv", "json", "pretty", "html")
DURATION_STOPS = ("close", "wait", "ignore")
MAX_INT32 = 2**31 - 1


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
