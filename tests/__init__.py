"""ForestGate's test suite (a package, so test modules of the same name in different folders and
the shared helper modules import without clashing)."""
