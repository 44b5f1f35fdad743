"""The generated tables: files and columns of docs/generator.md, "Tables", byte-identical reruns,
linked retry rows, propensities, and no full card number anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forestgate.training.generator.cards import luhn_valid
from forestgate.training.generator.generate import Result, generate, validate
from tests.training.conftest import SEED

ATTEMPT_COLUMNS = (
    "attempt_id", "payment_id", "parent_attempt_id", "attempt_no", "is_retry", "is_cascade",
    "ts_utc", "local_hour", "dow", "dom",
    "mti", "processing_code", "amount_minor", "currency", "amount_usd", "card_currency",
    "fx_needed", "bin8", "brand", "funding", "product_tier", "is_commercial", "issuer_country",
    "pan_hash", "par", "months_to_expiry", "mcc", "merchant_id", "merchant_country", "route_id",
    "acquirer_country", "is_cross_border", "is_local_acquiring", "pos_entry_mode",
    "pos_condition_code", "channel", "cit_mit", "cof_type", "is_initial_cof", "network_token",
    "cvv_present", "avs_provided", "three_ds", "eci", "sca_exemption", "challenge", "ip_country",
    "billing_country",
    "route_policy_id", "route_propensity", "eligible_routes", "retry_policy_id",
    "delay_propensity", "time_since_prev_attempt_s", "prev_response_code", "prev_mac",
    "response_code", "approved", "visa_category", "mc_group", "merchant_advice_code",
    "cvv_result", "avs_result", "eci_returned", "auth_latency_ms", "network_txn_id",
    "partial_amount",
    "interchange", "scheme_fee", "acquirer_fee", "fx_fee", "auth_fee", "integrity_fee",
    "total_cost", "merchant_value", "platform_revenue", "scenario_id",
)  # fmt: skip
TRUTH_COLUMNS = (
    "attempt_id", "p_approve_true", "p_approve_true_by_route", "is_fraud", "chargeback_ts",
    "reason_family_true", "balance_at_attempt", "next_funding_ts",
)  # fmt: skip
TABLES = (
    "attempts", "truth", "cards", "bins", "issuers", "merchants", "routes", "route_costs",
    "calendar_paydays", "scenario_events", "rules_config",
)  # fmt: skip


def test_every_table_is_written_with_the_reference_columns(small_dir: Path) -> None:
    for name in TABLES:
        assert (small_dir / f"{name}.parquet").is_file(), name
    attempts = pq.read_schema(small_dir / "attempts.parquet")
    assert [c for c in ATTEMPT_COLUMNS if c not in attempts.names] == []
    truth = pq.read_schema(small_dir / "truth.parquet")
    assert [c for c in TRUTH_COLUMNS if c not in truth.names] == []
    # The oracle stays out of the attempts table.
    assert not {"p_approve_true", "is_fraud", "reason_family_true"} & set(attempts.names)
    meta = attempts.metadata
    assert meta[b"forestgate.seed"] == str(SEED).encode()
    assert meta[b"forestgate.preset"] == b"small"


def test_small_preset_size(small: Result) -> None:
    assert 45_000 <= small.files["attempts"] <= 75_000
    assert small.files["truth"] == small.files["attempts"]


def test_same_seed_gives_byte_identical_files(small_dir: Path, tmp_path: Path) -> None:
    again = generate(validate("small", SEED, tmp_path / "again"))
    for name in TABLES:
        first = (small_dir / f"{name}.parquet").read_bytes()
        second = (again.out / f"{name}.parquet").read_bytes()
        assert first == second, f"{name}.parquet differs between two runs of seed {SEED}"


def test_another_seed_gives_another_world(small_dir: Path, tmp_path: Path) -> None:
    other = generate(validate("small", SEED + 1, tmp_path / "other"))
    a = pq.read_table(small_dir / "cards.parquet", columns=["pan_hash"]).column(0).to_pylist()
    b = pq.read_table(other.out / "cards.parquet", columns=["pan_hash"]).column(0).to_pylist()
    assert not set(a) & set(b)


_DIGITS = re.compile(r"(?<!\d)\d{13,19}(?!\d)")


def _pan_like(text: str) -> list[str]:
    return [m for m in _DIGITS.findall(text) if luhn_valid(m)]


def test_the_scanner_finds_a_card_number() -> None:
    # The control for the test below: a Luhn-valid 16-digit number inside a string is found.
    assert _pan_like("card 4111111111111111 here") == ["4111111111111111"]
    assert _pan_like("4111111111111112") == []


def _strings(column: pa.ChunkedArray) -> list[str]:
    """Every string or integer value of a column as text (map keys and list items included)."""
    typ = column.type
    if pa.types.is_map(typ):
        return [str(k) for row in column.to_pylist() if row for k, _ in row]
    if pa.types.is_list(typ):
        return [str(x) for row in column.to_pylist() if row for x in row]
    if pa.types.is_string(typ) or pa.types.is_integer(typ) or pa.types.is_dictionary(typ):
        return [str(v) for v in column.to_pylist() if v is not None]
    return []


def test_no_column_holds_a_full_card_number(small_dir: Path) -> None:
    for name in (*TABLES, "truth_cards", "truth_issuers", "truth_routes"):
        table = pq.read_table(small_dir / f"{name}.parquet")
        for col_name in table.column_names:
            hits = [s for s in _strings(table.column(col_name)) if _pan_like(s)]
            assert hits == [], f"{name}.{col_name} holds card-number-like values: {hits[:3]}"
    cards = pq.read_table(small_dir / "cards.parquet", columns=["pan_hash", "bin8"])
    hashes = cards.column("pan_hash").to_pylist()
    assert len(set(hashes)) == len(hashes)
    assert all(len(b) == 8 and b.isdigit() for b in cards.column("bin8").to_pylist())


def test_retries_are_linked_rows_of_their_payment(small_dir: Path) -> None:
    a = pq.read_table(
        small_dir / "attempts.parquet",
        columns=["attempt_id", "payment_id", "parent_attempt_id", "attempt_no", "ts_utc",
                 "approved", "is_retry", "retry_kind"],
    ).to_pydict()  # fmt: skip
    by_id = {aid: i for i, aid in enumerate(a["attempt_id"])}
    assert a["attempt_id"] == sorted(a["attempt_id"])
    n_children = 0
    for i, parent in enumerate(a["parent_attempt_id"]):
        if parent is None:
            assert a["attempt_no"][i] == 1
            assert a["retry_kind"][i] is None
            continue
        n_children += 1
        j = by_id[parent]
        assert a["payment_id"][j] == a["payment_id"][i]
        assert a["attempt_no"][i] == a["attempt_no"][j] + 1
        assert a["ts_utc"][i] > a["ts_utc"][j]
        assert not a["approved"][j], "an approved attempt is never retried"
    assert n_children > 2_000


def test_propensities_and_eligible_routes(small_dir: Path) -> None:
    a = pq.read_table(
        small_dir / "attempts.parquet",
        columns=["route_id", "eligible_routes", "route_propensity", "delay_propensity",
                 "attempt_no", "decided_by"],
    ).to_pydict()  # fmt: skip
    explored = 0
    for route, eligible, prop, delay, no, who in zip(
        a["route_id"], a["eligible_routes"], a["route_propensity"], a["delay_propensity"],
        a["attempt_no"], a["decided_by"], strict=True,
    ):  # fmt: skip
        assert route in eligible
        assert 0.0 < prop <= 1.0
        if no == 1:
            assert delay is None
            explored += prop < 0.5
        else:
            assert 0.0 < delay <= 1.0
            assert who is not None
    # Epsilon-exploration puts a few percent of first attempts on a non-incumbent route.
    assert 0.02 < explored / a["attempt_no"].count(1) < 0.12


def test_a_retry_sees_the_state_at_its_own_time(small_dir: Path) -> None:
    # Insufficient funds recovers after the card's payday: a retry of a 51 sent after the funding
    # event the decline was waiting for succeeds far more often than one sent before it, and the
    # true balance it saw is higher.
    a = pq.read_table(
        small_dir / "attempts.parquet",
        columns=["parent_attempt_id", "response_code", "approved", "ts_utc"],
    )
    t = pq.read_table(
        small_dir / "truth.parquet", columns=["next_funding_ts", "balance_at_attempt"]
    )
    parent = np.asarray(a.column("parent_attempt_id").fill_null(-1).to_numpy())
    code = np.asarray(a.column("response_code").to_numpy(zero_copy_only=False))
    ok = np.asarray(a.column("approved").to_numpy())
    ts = a.column("ts_utc").cast(pa.int64()).to_numpy()
    funding = t.column("next_funding_ts").cast(pa.int64()).to_numpy()
    balance = t.column("balance_at_attempt").to_numpy()
    child = np.flatnonzero(parent >= 0)
    child = child[code[parent[child]] == "51"]
    after = ts[child] >= funding[parent[child]]
    assert after.sum() > 50 and (~after).sum() > 50
    assert ok[child[after]].mean() > ok[child[~after]].mean() + 0.2
    refilled = balance[child[after]] > balance[parent[child[after]]]
    assert refilled.mean() > 0.8


def test_drift_scenarios_are_labelled(small_dir: Path) -> None:
    events = pq.read_table(small_dir / "scenario_events.parquet").to_pydict()
    ids = set(events["scenario_id"])
    assert {"issuer_xb_tightening", "route_outage_c_br", "card_testing", "fx_shock_brl",
            "new_route", "black_friday", "cyber_monday", "chargeback_delay"} <= ids  # fmt: skip
    a = pq.read_table(small_dir / "attempts.parquet", columns=["scenario_id", "route_id", "ts_utc"])
    labels = a.column("scenario_id").to_pylist()
    for sid in ("issuer_xb_tightening", "route_outage_c_br", "card_testing", "fx_shock_brl"):
        assert labels.count(sid) > 0, sid
    # The new route carries no traffic before it goes live.
    live = events["start_ts"][events["scenario_id"].index("new_route")]
    routes = a.column("route_id").to_pylist()
    ts = a.column("ts_utc").to_pylist()
    assert all(t >= live for r, t in zip(routes, ts, strict=True) if r == "E-US-DEBIT")


@pytest.mark.parametrize("table", ["cards", "merchants", "routes", "route_costs", "rules_config"])
def test_dimension_tables_are_not_empty(small_dir: Path, table: str) -> None:
    assert pq.read_metadata(small_dir / f"{table}.parquet").num_rows > 0
