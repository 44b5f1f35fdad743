"""`forestgate simulate`: held-out generated payments replayed through Score, resolved against
the generator's ground truth, and compared with the incumbent policy on the same random draws.

The pipeline of one run: dataset (held-out first attempts and the log's retries) -> truth
(approval and decline codes of any attempt, from truth.parquet and the log's own recovery) ->
episode (one payment's attempts under one policy: ForestGate over gRPC, or the incumbent) ->
ledger (the guardrail re-checks every retry) -> metrics (approval, net revenue, cost per
approved payment, violations). docs/evaluation.md, "Simulation", states the approximations.
"""

from forestgate.errors import UserError


class SimulateError(UserError):
    """Bad input to a simulation (data directory, flags), reported on one line."""
