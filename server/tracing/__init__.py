"""Tracing: OpenTelemetry spans for RPCs and engine batches, built off the hot path.

On the event loop a call leaves a record of clock readings (record.py, tracer.py); records
that are sampled, slow or failed go to a bounded queue whose thread builds the spans
(spans.py) and exports them over OTLP (export.py). config.py reads the settings and OTEL_*
variables; provider.py assembles the pipeline.
"""
