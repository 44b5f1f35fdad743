"""Trace settings: whether to trace, where to export, how to sample, from settings and OTEL_*.

Each setting comes from, in order: a `forestgate serve` flag, its FORESTGATE_* variable (both
resolved by server/settings.py), the standard OTEL_* variable, the default. Tracing is on when
an OTLP endpoint is set (flag, OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER=otlp, and off when
OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, as Triton and MLServer leave it off until
it is configured. The exporters read their other variables themselves (headers, TLS
certificates, compression, timeout).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import SpanContext

from forestgate.server.settings import Settings, SettingsError

PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_SAMPLER = "parentbased_traceidratio"
DEFAULT_RATIO = 0.01
SAMPLERS = (
    "always_on", "always_off", "traceidratio",
    "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
)  # fmt: skip


@dataclass(frozen=True)
class HeadSampler:
    """The standard samplers of OTEL_TRACES_SAMPLER, decided inline on the event loop.

    The SDK's sampler objects make the same decisions, but build a SamplingResult and a context
    for each; on the hot path that cost 1.5-2 us a call (measured). A parent-based sampler
    follows the caller's sampled flag; otherwise (or for a call without a caller) a call is
    sampled when its trace id's low 64 bits fall below `bound`, the SDK's TraceIdRatioBased
    rule (bound 0: never, 2**64: always). tests/server/test_trace_config.py checks the two
    against each other.
    """

    parent_based: bool
    bound: int

    def sampled(self, parent: SpanContext | None, trace_id: int) -> bool:
        if parent is not None and self.parent_based:
            return bool(parent.trace_flags.sampled)
        return (trace_id & _LOW_64) < self.bound


_LOW_64 = (1 << 64) - 1
NEVER = HeadSampler(parent_based=False, bound=0)


@dataclass(frozen=True)
class TraceConfig:
    enabled: bool
    why: str  # for the start-up log line
    protocol: str = "grpc"
    endpoint: str = ""  # from the flag; empty: the exporter's variables or its default
    sampler: HeadSampler = NEVER
    slow_ns: int = 0
    forced_per_s: int = 100
    max_queue: int = 2048
    max_export_batch: int = 512
    schedule_delay_s: float = 5.0


def trace_config(settings: Settings, environ: Mapping[str, str]) -> TraceConfig:
    """Resolve tracing from the settings and the environment; bad values raise SettingsError."""
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter not in ("", "otlp", "none"):
        raise SettingsError(f"OTEL_TRACES_EXPORTER={exporter!r}: ForestGate exports otlp or none")
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return TraceConfig(False, "tracing off: OTEL_SDK_DISABLED=true")
    if exporter == "none":
        return TraceConfig(False, "tracing off: OTEL_TRACES_EXPORTER=none")
    endpoint_set = settings.trace_endpoint or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    )
    if not endpoint_set and exporter != "otlp":
        return TraceConfig(False, "tracing off: no OTLP endpoint set (--trace-endpoint)")
    protocol = settings.trace_protocol or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    )
    if protocol not in PROTOCOLS:
        raise SettingsError(f"trace protocol {protocol!r}: expected grpc or http/protobuf")
    sampler, sampler_text = _sampler(settings, environ)
    return TraceConfig(
        True,
        f"tracing on: OTLP/{protocol} to {endpoint_set or 'the default endpoint'}, {sampler_text}",
        protocol=protocol,
        endpoint=settings.trace_endpoint,
        sampler=sampler,
        slow_ns=settings.trace_slow_us * 1000,
        forced_per_s=settings.trace_forced_per_s,
        max_queue=_positive(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048),
        max_export_batch=_positive(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
        schedule_delay_s=_positive(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000,
    )


def _sampler(settings: Settings, environ: Mapping[str, str]) -> tuple[HeadSampler, str]:
    name = environ.get("OTEL_TRACES_SAMPLER", DEFAULT_SAMPLER).strip().lower()
    if name not in SAMPLERS:
        raise SettingsError(f"OTEL_TRACES_SAMPLER={name!r}: expected one of {', '.join(SAMPLERS)}")
    ratio = settings.trace_sample_ratio
    if ratio is None:
        raw = environ.get("OTEL_TRACES_SAMPLER_ARG", "")
        try:
            ratio = float(raw) if raw.strip() else DEFAULT_RATIO
        except ValueError:
            raise SettingsError(f"OTEL_TRACES_SAMPLER_ARG={raw!r}: expected a number") from None
        if not 0.0 <= ratio <= 1.0:
            raise SettingsError(f"OTEL_TRACES_SAMPLER_ARG={raw!r}: must be within 0-1")
    root = name.removeprefix("parentbased_")
    bound = {"always_on": 1 << 64, "always_off": 0}.get(
        root, TraceIdRatioBased.get_bound_for_rate(ratio)
    )
    sampler = HeadSampler(parent_based=name.startswith("parentbased_"), bound=bound)
    text = name + (f" {ratio:g}" if name.endswith("traceidratio") else "")
    return sampler, text


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a whole number") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r}: must be >= 1")
    return value
