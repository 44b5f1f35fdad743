"""The scoring server: transport, batching, engine, decisions, experiments and telemetry."""
