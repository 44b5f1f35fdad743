"""Clients of ForestGate: the Python client library and `forestgate load` (ghz-compatible)."""
