"""Tracing's settings and decisions without a network: OTEL_* variables against flags, the
sampler, the forced-export rate limit on the tracer's own clock readings, and the resource."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from forestgate.server import settings as settings_module
from forestgate.server.settings import Settings, SettingsError
from forestgate.server.tracing.config import NEVER, SAMPLERS, trace_config
from forestgate.server.tracing.context import incoming
from forestgate.server.tracing.export import SpanQueue
from forestgate.server.tracing.provider import resource
from forestgate.server.tracing.tracer import Tracer

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}


def settings_from(argv: list[str], environ: dict[str, str]) -> Settings:
    parser = argparse.ArgumentParser()
    settings_module.add_arguments(parser)
    return settings_module.from_sources(parser.parse_args(argv), environ)


def test_tracing_is_off_until_an_endpoint_is_set_and_off_when_the_sdk_is_disabled():
    assert not trace_config(Settings(), {}).enabled
    assert trace_config(Settings(), ENDPOINT).enabled
    assert trace_config(Settings(), {"OTEL_TRACES_EXPORTER": "otlp"}).enabled
    assert trace_config(Settings(trace_endpoint="http://x:4317"), {}).enabled
    disabled = {**ENDPOINT, "OTEL_SDK_DISABLED": "true"}
    assert not trace_config(Settings(trace_endpoint="http://x:4317"), disabled).enabled
    assert not trace_config(Settings(), {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}).enabled


def test_a_flag_beats_forestgate_variables_which_beat_otel_variables():
    environ = {
        **ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER_ARG": "0.5", "FORESTGATE_TRACE_SAMPLE_RATIO": "0.25",
    }  # fmt: skip
    config = trace_config(settings_from([], environ), environ)
    assert config.protocol == "http/protobuf"
    assert "parentbased_traceidratio 0.25" in config.why
    flagged = settings_from(["--trace-sample-ratio", "1", "--trace-protocol", "grpc"], environ)
    config = trace_config(flagged, environ)
    assert config.protocol == "grpc"
    assert "parentbased_traceidratio 1" in config.why
    assert "0.01" in trace_config(Settings(), ENDPOINT).why  # the default ratio


def test_samplers_by_name_and_bad_values_name_the_variable():
    def decide(name: str, parent_sampled: bool | None) -> bool:
        config = trace_config(Settings(), {**ENDPOINT, "OTEL_TRACES_SAMPLER": name})
        tracer = Tracer(_queue(), sampler=config.sampler)
        flags = {None: None, True: "01", False: "00"}[parent_sampled]
        metadata = [] if flags is None else [("traceparent", f"00-{'a' * 32}-{'b' * 16}-{flags}")]
        return tracer.begin("s/m", metadata, 0).sampled

    assert decide("always_on", False) and not decide("always_off", True)
    assert decide("parentbased_always_off", True) and not decide("parentbased_always_off", None)
    assert not decide("parentbased_always_on", False) and decide("parentbased_always_on", None)
    for environ, named in (
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER_ARG": "lots"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/json"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
    ):
        with pytest.raises(SettingsError, match=named):
            trace_config(Settings(), {**ENDPOINT, **environ})
    with pytest.raises(SettingsError, match="trace_sample_ratio"):
        Settings(trace_sample_ratio=1.5)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(SAMPLERS),
    ratio=st.floats(0.0, 1.0),
    trace_id=st.integers(1, (1 << 128) - 1),
    parent=st.none() | st.tuples(st.integers(1, (1 << 128) - 1), st.booleans()),
)
def test_the_inline_sampler_decides_as_the_sdks_samplers_do(name, ratio, trace_id, parent):
    """The SDK's own sampler objects, built as the SDK builds them from OTEL_TRACES_SAMPLER."""
    from opentelemetry.sdk.trace import sampling
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    environ = {**ENDPOINT, "OTEL_TRACES_SAMPLER": name, "OTEL_TRACES_SAMPLER_ARG": repr(ratio)}
    ours = trace_config(Settings(), environ).sampler
    sdk = sampling._KNOWN_SAMPLERS[name]
    sdk = sdk(ratio) if "traceidratio" in name else sdk  # the SDK's own constructors
    context, caller = None, None
    if parent is not None:
        caller = SpanContext(parent[0], 7, True, TraceFlags(int(parent[1])))
        context = set_span_in_context(NonRecordingSpan(caller))
        trace_id = parent[0]
    decision = sdk.should_sample(context, trace_id, "s/m").decision
    assert ours.sampled(caller, trace_id) == decision.is_sampled()


class _Nowhere(SpanExporter):
    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _queue() -> SpanQueue:
    return SpanQueue(_Nowhere(), lambda records, offset: [], schedule_delay_s=3600)


def test_forced_exports_are_rate_limited_on_the_calls_own_clock_readings():
    """2 a second: a burst of 5 slow calls exports 2; half a second later one more token."""
    queue = _queue()
    tracer = Tracer(queue, sampler=NEVER, slow_ns=1_000, forced_per_s=2)
    second = 1_000_000_000

    def call(start_ns: int, took_ns: int, code: int = 0) -> bool:
        record = tracer.begin("s/m", [], start_ns)
        tracer.finish(record, code, start_ns + took_ns, lambda: "ipv4:127.0.0.1:1")
        return bool(record.forced)

    assert [call(10 * second, 5_000) for _ in range(5)] == [True, True, False, False, False]
    assert not call(10 * second, 500)  # fast and OK: never forced, no token spent
    assert call(10 * second + second // 2, 5_000, code=13)  # one token back after 0.5 s
    assert not call(10 * second + second // 2, 5_000, code=13)
    assert tracer.forced == {
        ("slow", "exported"): 2, ("slow", "rate_limited"): 3,
        ("error", "exported"): 1, ("error", "rate_limited"): 1,
    }  # fmt: skip
    assert len(queue) == 3


def test_incoming_context_kinds():
    good = incoming([("traceparent", f"00-{'a' * 32}-{'b' * 16}-01"), ("tracestate", "k=v")])
    assert good.parent is not None and good.parent.trace_flags.sampled and not good.malformed
    assert good.tracestate == "k=v"
    for header in (
        "00-" + "0" * 32 + "-" + "b" * 16 + "-01",  # all-zero trace id
        "00-" + "A" * 32 + "-" + "b" * 16 + "-01",  # upper case
        "00-abc-def-01", "garbage", "ff-" + "a" * 32 + "-" + "b" * 16 + "-01",
    ):  # fmt: skip
        got = incoming([("traceparent", header), ("tracestate", "k=v")])
        assert got.parent is None and got.malformed and got.tracestate == "", header
    future = incoming([("traceparent", f"01-{'a' * 32}-{'b' * 16}-01-extra")])
    assert future.parent is not None  # a later version is read as far as version 00 goes
    assert incoming(None) == incoming([]) and not incoming([]).malformed


def test_the_resource_reads_the_standard_variables_and_suffixes_a_given_instance_id(monkeypatch):
    """A service.instance.id from OTEL_RESOURCE_ATTRIBUTES would be shared by every worker, so
    with several workers each adds its pid (tests/server/test_tracing.py runs two)."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "fg-eu")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    here = resource(workers=1).attributes
    assert here["service.name"] == "fg-eu"
    assert here["deployment.environment"] == "prod"
    code = "from forestgate.server.tracing.provider import resource; "
    code += "print(resource(workers=2).attributes['service.instance.id'])"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=pod-7"},
    ).stdout.strip()  # fmt: skip
    assert other == f"pod-7-{other.rsplit('-', 1)[1]}" and other.rsplit("-", 1)[1].isdigit()
