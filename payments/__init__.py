"""The payments domain core: response codes, the network-rule guardrail and route economics.

Pure, transport-free code shared by the server, training and the simulator:

- ``codes``: the response-code taxonomy, Visa categories, Mastercard advice codes (rules.yaml)
- ``guardrail``: rules H1-H13 as one pure function ``check(action, history, rules, now)``
- ``ledger``: the same guardrail kept incrementally per card and merchant (``Ledger``)
- ``money``: integer minor units with ISO 4217 exponents and explicitly rounded conversions
- ``economics``: route cost table (routes.yaml), attempt costs, expected net value, ranking
"""
