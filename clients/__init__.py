"""Clients of ForestGate: the Python client library and `forestgate load`, a ghz-compatible load tool."""
