"""The generator's vectorised attempt costs equal forestgate.payments.economics exactly."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from forestgate.payments.economics import CardProfile, RouteTable, cost_breakdown
from forestgate.payments.money import Money
from forestgate.training.generator.world import exchange_rates


def test_costs_match_the_payments_core(small_dir: Path) -> None:
    cols = ["amount_minor", "currency", "brand", "funding", "is_commercial", "issuer_country",
            "route_id", "approved", "interchange", "scheme_fee", "acquirer_fee", "fx_fee",
            "auth_fee", "scenario_id"]  # fmt: skip
    rows = pq.read_table(small_dir / "attempts.parquet", columns=cols).slice(0, 4_000).to_pylist()
    table = RouteTable.load()
    rates = exchange_rates()
    checked = 0
    for r in rows:
        if r["scenario_id"] == "fx_shock_brl":
            continue
        card = CardProfile(
            network=r["brand"],
            card_type="commercial" if r["is_commercial"] else r["funding"],
            issuer_country=r["issuer_country"],
        )
        costs = cost_breakdown(
            table[r["route_id"]], Money(r["amount_minor"], r["currency"]), card, rates=rates
        )
        assert r["auth_fee"] == costs.per_attempt.amount_minor
        if r["approved"]:
            got = (r["interchange"], r["scheme_fee"], r["acquirer_fee"], r["fx_fee"])
            want = (
                costs.interchange.amount_minor,
                costs.scheme_fee.amount_minor,
                costs.acquirer_markup.amount_minor,
                costs.fx.amount_minor,
            )
            assert got == want, (r, costs)
            checked += 1
        else:
            assert r["interchange"] == r["scheme_fee"] == r["acquirer_fee"] == r["fx_fee"] == 0
    assert checked > 3_000
