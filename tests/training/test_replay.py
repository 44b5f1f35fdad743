"""The policy view checked against what must hold whatever the model: the logged money matches
the generator's ledger, the truth used as a model is the oracle, and a policy that sends nothing
recovers nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forestgate.training.trainer import features, replay
from forestgate.training.trainer.features import FeatureTables


@pytest.fixture(scope="module")
def tables(small_dir: Path) -> FeatureTables:
    return features.extract(small_dir)


def test_logged_money_matches_the_generators_ledger(small_dir: Path, tables: FeatureTables) -> None:
    rc = tables.route_candidates
    logged = rc.filter(rc.column("logged"))
    money = replay.money(small_dir, logged)
    attempts = pq.read_table(small_dir / "attempts.parquet").to_pydict()
    row_of = {a: i for i, a in enumerate(attempts["attempt_id"])}
    rows = [row_of[a] for a in logged.column("attempt_id").to_pylist()]
    approved = np.array([attempts["approved"][i] for i in rows])
    usd = np.array([attempts["amount_usd"][i] / attempts["amount_minor"][i] for i in rows])
    ledger_approval = np.array(
        [sum(attempts[k][i] for k in ("interchange", "scheme_fee", "acquirer_fee", "fx_fee"))
         for i in rows]
    )  # fmt: skip
    ledger_fee = np.array([attempts["auth_fee"][i] for i in rows])
    # The ledger books approval costs only on approvals; the replay prices them for every route.
    assert money.approval_usd[approved] == pytest.approx(ledger_approval[approved] * usd[approved])
    assert money.attempt_usd == pytest.approx(ledger_fee * usd)
    assert money.logged.all()
    assert not np.isnan(money.p_true).any()


def test_the_truth_used_as_a_model_is_the_oracle(small_dir: Path, tables: FeatureTables) -> None:
    rc = tables.route_candidates
    truth = replay.money(small_dir, rc).p_true
    outcomes = {o.policy: o for o in replay.routing(small_dir, rc, truth)}
    assert outcomes["model"].regret_usd_per_1000 == pytest.approx(0.0, abs=1e-9)
    assert outcomes["model"].agrees_with_oracle == pytest.approx(1.0)
    assert outcomes["model"].net_usd_per_1000 == pytest.approx(outcomes["oracle"].net_usd_per_1000)
    # The logging policy is worse than the oracle (it explores, and prefers cheap local routes).
    assert outcomes["logging policy"].regret_usd_per_1000 > 0
    payments = np.unique(rc.column("attempt_id").to_numpy()).size
    assert {o.payments for o in outcomes.values()} == {payments}
    # A model that inverts the truth does worse than the logging policy.
    worst = {o.policy: o for o in replay.routing(small_dir, rc, 1 - truth)}
    assert worst["model"].net_usd_per_1000 < worst["logging policy"].net_usd_per_1000


def _retry_money(small_dir: Path, rc: pa.Table) -> replay.Money:
    pairs = {"attempt_id": "parent_attempt_id", "route_id": "route_id", "logged": "logged"}
    return replay.money(small_dir, pa.table({k: rc.column(v) for k, v in pairs.items()}))


def test_a_policy_that_never_retries_recovers_nothing(
    small_dir: Path, tables: FeatureTables
) -> None:
    rc = tables.retry_candidates
    m = _retry_money(small_dir, rc)
    result = replay.retries(small_dir, rc, np.zeros(rc.num_rows),
                            value_usd=m.margin_usd, attempt_usd=m.attempt_usd)  # fmt: skip
    by = {(o.policy, o.family): o for o in result.outcomes}
    assert by[("model", "all")].retried_share == 0
    assert by[("model", "all")].recovery_ips == 0
    assert result.guardrail_violations == 0 and result.checked == 0
    # The logging policy's own recovery is the plain share of logged retries that were approved.
    logged = rc.filter(rc.column("logged"))
    observed = np.mean(logged.column("approved").to_numpy(zero_copy_only=False))
    assert by[("logging policy (randomised)", "all")].recovery_snips == pytest.approx(observed)


def test_a_policy_choosing_the_logged_delays_recovers_what_was_logged(
    small_dir: Path, tables: FeatureTables
) -> None:
    """Scores that put each logged delay first make the model pick it on every decision, so
    IPS and SNIPS reduce to their textbook forms over the logged rows."""
    rc = tables.retry_candidates
    m = _retry_money(small_dir, rc)
    logged = rc.column("logged").to_numpy(zero_copy_only=False).astype(bool)
    result = replay.retries(small_dir, rc, np.where(logged, 1.0, 0.0),
                            value_usd=m.margin_usd, attempt_usd=m.attempt_usd)  # fmt: skip
    model = next(o for o in result.outcomes if o.policy == "model" and o.family == "all")
    assert model.matched == model.decisions  # the randomised policy only logs allowed delays
    rows = rc.filter(pa.array(logged))
    y = rows.column("approved").to_numpy(zero_copy_only=False).astype(float)
    inverse = 1 / rows.column("propensity").to_numpy(zero_copy_only=False)
    assert model.recovery_ips == pytest.approx(np.mean(y * inverse))
    assert model.recovery_snips == pytest.approx(np.average(y, weights=inverse))
    assert result.guardrail_violations == 0
