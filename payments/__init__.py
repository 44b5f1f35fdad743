"""The payments domain core: response codes, the network-rule guardrail, route economics; pure code shared by the server, training and the simulator."""
