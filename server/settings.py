"""Settings: the one immutable, validated configuration of a server process.

Built once at start-up from command-line flags, then `FORESTGATE_*` environment variables, then
defaults (a flag beats the environment); every other module receives it and nothing reads the
environment at import time. An invalid value fails start-up with a message naming the setting.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forestgate.errors import ConfigError

ENV_PREFIX = "FORESTGATE_"


@dataclass(frozen=True)
class Settings:
    model_repository: Path = Path("models")
    host: str = "127.0.0.1"
    port: int = 50051
    metrics_port: int = 9090
    workers: int = 1
    max_batch_rows: int = 256
    max_request_rows: int = 100_000
    max_queue_delay_us: int = 0
    max_gather_us: int = 0
    idle_inline_rows: int = 16
    max_queue_rows: int = 4096
    shed_queue_time_us: int = 2000
    shed_interval_ms: int = 100
    execution: str = "thread"
    engine_cpus: str = ""
    max_message_bytes: int = 4 * 1024 * 1024
    max_concurrent_rpcs: int = 0
    max_pending_calls: int = 128
    grace_period_s: float = 10.0
    log_level: str = "INFO"
    trace_endpoint: str = ""
    trace_protocol: str = ""
    trace_sample_ratio: float | None = None
    trace_slow_us: int = 0
    trace_forced_per_s: int = 100
    approval_model: str = "approval"
    retry_model: str = "retry"
    decision_model_share: float = 0.5
    decision_budget_us: int = 20_000
    default_margin: float = 0.3
    fraud_rate: float = 0.001
    chargeback_fee_usd: float = 15.0
    max_remembered_attempts: int = 1_000_000
    online_store: str = "memory"
    online_snapshot: str = ""

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                value = getattr(self, name)
                raise SettingsError(f"setting {name}={value!r}: {rule}")

        need(0 <= self.port <= 65535, "port", "must be 0-65535 (0 picks a free port)")
        need(
            -1 <= self.metrics_port <= 65535,
            "metrics_port",
            "must be 0-65535 (0 picks a free port, -1 disables)",
        )
        need(1 <= self.workers <= 64, "workers", "must be 1-64")
        need(self.max_batch_rows >= 1, "max_batch_rows", "must be >= 1")
        need(self.max_request_rows >= 1, "max_request_rows", "must be >= 1")
        need(self.max_queue_delay_us >= 0, "max_queue_delay_us", "must be >= 0")
        need(self.max_gather_us >= 0, "max_gather_us", "must be >= 0 (0: off)")
        need(self.idle_inline_rows >= 0, "idle_inline_rows", "must be >= 0 (0: off)")
        need(self.max_pending_calls >= 0, "max_pending_calls", "must be >= 0 (0: gRPC's default)")
        need(self.shed_queue_time_us >= 0, "shed_queue_time_us", "must be >= 0 (0: off)")
        need(self.shed_interval_ms >= 1, "shed_interval_ms", "must be >= 1")
        need(
            self.max_queue_rows >= self.max_batch_rows,
            "max_queue_rows",
            "must be >= max_batch_rows",
        )
        need(self.execution in ("inline", "thread"), "execution", "must be thread or inline")
        try:
            cpus = self.cpus
        except ValueError:
            cpus = (-1,)
        need(all(cpu >= 0 for cpu in cpus), "engine_cpus", "must be CPU numbers like 1 or 2,3")
        need(self.max_message_bytes >= 1024, "max_message_bytes", "must be >= 1024")
        need(
            self.max_concurrent_rpcs >= 0,
            "max_concurrent_rpcs",
            "must be >= 0 (0: as many as max_queue_rows)",
        )
        need(self.grace_period_s >= 0, "grace_period_s", "must be >= 0")
        need(
            self.trace_protocol in ("", "grpc", "http/protobuf"),
            "trace_protocol",
            "must be grpc or http/protobuf",
        )
        need(
            self.trace_sample_ratio is None or 0.0 <= self.trace_sample_ratio <= 1.0,
            "trace_sample_ratio",
            "must be within 0-1",
        )
        need(self.trace_slow_us >= 0, "trace_slow_us", "must be >= 0 (0: off)")
        need(self.trace_forced_per_s >= 0, "trace_forced_per_s", "must be >= 0 (0: no limit)")
        need(
            0.0 < self.decision_model_share <= 1.0,
            "decision_model_share",
            "must be within (0, 1]",
        )
        need(self.decision_budget_us >= 1, "decision_budget_us", "must be >= 1")
        need(0.0 <= self.default_margin <= 1.0, "default_margin", "must be within 0-1")
        need(0.0 <= self.fraud_rate <= 1.0, "fraud_rate", "must be within 0-1")
        need(self.chargeback_fee_usd >= 0, "chargeback_fee_usd", "must be >= 0")
        need(self.max_remembered_attempts >= 1, "max_remembered_attempts", "must be >= 1")
        need(
            self.online_store == "memory"
            or self.online_store.startswith(("redis://", "rediss://")),
            "online_store",
            "must be memory or a redis:// URL",
        )
        need(
            self.log_level in ("DEBUG", "INFO", "WARNING", "ERROR"),
            "log_level",
            "must be DEBUG, INFO, WARNING or ERROR",
        )

    @property
    def cpus(self) -> tuple[int, ...]:
        """engine_cpus as CPU numbers: "" -> (), "1" -> (1,), "2,3" -> (2, 3)."""
        return tuple(int(part) for part in self.engine_cpus.split(",") if part.strip())


class SettingsError(ConfigError):
    """A setting with an invalid value; the message names it."""


# name -> (type, unit and meaning). The help text of `forestgate serve` is generated from this.
HELP: dict[str, tuple[type, str]] = {
    "model_repository": (Path, "directory of bundles, <name>/<version>/manifest.json"),
    "host": (str, "address to listen on"),
    "port": (int, "gRPC port for every service (0 picks a free one, shared by all workers)"),
    "metrics_port": (
        int,
        "Prometheus /metrics HTTP port; worker i uses port+i (0: a free one, -1: off)",
    ),
    "workers": (int, "processes sharing the port via SO_REUSEPORT (balances connections)"),
    "max_batch_rows": (int, "rows, the most one engine call takes; larger requests are chunked"),
    "max_request_rows": (int, "rows, the most one request may carry; beyond it INVALID_ARGUMENT"),
    "max_queue_delay_us": (int, "microseconds, how long the oldest request may wait for more"),
    "max_gather_us": (
        int,
        "microseconds a batch may wait for rows while arrivals outpace engine calls (0: off)",
    ),
    "idle_inline_rows": (
        int,
        "rows; a request this small that finds nothing in flight is scored on the event loop, "
        "saving the thread hand-off (0: off; never with --engine-cpus)",
    ),
    "max_queue_rows": (int, "rows, queue bound per model; beyond it RESOURCE_EXHAUSTED"),
    "shed_queue_time_us": (
        int,
        "microseconds; shed (RESOURCE_EXHAUSTED) while queue time stays above it (0: off)",
    ),
    "shed_interval_ms": (int, "milliseconds queue time must stay above target before shedding"),
    "execution": (str, "thread (an engine thread per model) or inline (on the event loop)"),
    "engine_cpus": (str, "CPUs to pin engine threads to, e.g. 1 or 2,3 (empty: not pinned)"),
    "max_message_bytes": (int, "bytes, largest request or response message accepted"),
    "max_concurrent_rpcs": (
        int,
        "inference RPCs in progress before RESOURCE_EXHAUSTED (0: max_queue_rows)",
    ),
    "max_pending_calls": (
        int,
        "calls gRPC core may hold before the server takes them; beyond it they are refused "
        "there at once (0: gRPC's defaults, 1000 soft and 3000 hard)",
    ),
    "grace_period_s": (float, "seconds in-flight calls get to finish on SIGTERM"),
    "log_level": (str, "DEBUG, INFO, WARNING or ERROR"),
    "trace_endpoint": (
        str,
        "OTLP collector URL, e.g. http://localhost:4317; setting it turns tracing on "
        "(else OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT)",
    ),
    "trace_protocol": (
        str,
        "grpc or http/protobuf (else OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL, else grpc)",
    ),
    "trace_sample_ratio": (
        float,
        "head-sampling ratio for calls without a sampled parent (else OTEL_TRACES_SAMPLER_ARG, "
        "else 0.01)",
    ),
    "trace_slow_us": (
        int,
        "microseconds; a call slower than this is exported whatever the sampling (0: off)",
    ),
    "trace_forced_per_s": (
        int,
        "most slow or failed unsampled calls exported per second (0: no limit)",
    ),
    "approval_model": (str, "model Score asks for approval probabilities, one row per route"),
    "retry_model": (str, "model Score asks for retry approval, one row per candidate delay"),
    "decision_model_share": (
        float,
        "share of a Score call's remaining deadline the models may use before the incumbent "
        "rules answer",
    ),
    "decision_budget_us": (
        int,
        "microseconds the models may use when a Score call has no deadline",
    ),
    "default_margin": (
        float,
        "value of an approval as a share of the amount, when Score gets no approval_value",
    ),
    "fraud_rate": (float, "p(fraud | approved) in the expected fraud loss (no fraud model)"),
    "chargeback_fee_usd": (float, "fee per chargeback, in the expected fraud loss"),
    "max_remembered_attempts": (
        int,
        "attempts Score keeps by id for ReportOutcome and retry consultations (oldest dropped)",
    ),
    "online_store": (
        str,
        "where the online features, guardrail counters and decided attempts live: memory (this "
        "process) or a redis:// URL that replicas share",
    ),
    "online_snapshot": (
        str,
        "directory the memory store saves to on graceful shutdown and resumes from at start "
        "(empty: not saved)",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    for name, (kind, text) in HELP.items():
        default = getattr(defaults, name)
        shown = "unset" if default in ("", None) else default
        env = ENV_PREFIX + name.upper()
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            metavar=kind.__name__.upper() if kind is not Path else "DIR",
            help=f"{text} (default {shown}; env {env})",
        )


def from_sources(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Flags first, then FORESTGATE_* variables, then defaults; conversion errors name the key."""
    values: dict[str, Any] = {}
    for name, (kind, _) in HELP.items():
        raw = getattr(args, name, None)
        source = f"--{name.replace('_', '-')}"
        if raw is None:
            raw = environ.get(ENV_PREFIX + name.upper())
            source = ENV_PREFIX + name.upper()
        if raw is None:
            continue
        try:
            values[name] = kind(raw)
        except ValueError:
            raise SettingsError(
                f"setting {name} ({source}={raw!r}): expected {kind.__name__}"
            ) from None
    if "log_level" in values:
        values["log_level"] = str(values["log_level"]).upper()
    return dataclasses.replace(Settings(), **values)
