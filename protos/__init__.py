"""Generated gRPC code for ForestGate's APIs; regenerate with `make proto`, never edit by hand."""
