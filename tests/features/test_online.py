"""SQL against the online reference: every attempt of the small data set streamed through
payments.features.FeatureState in (ts, attempt_id) order, and every feature of every row of the
approval, route-candidate, retry and retry-candidate tables compared with the SQL output (the
full tables, not a sample: about 5 s)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from forestgate.payments import features as pf
from forestgate.payments.codes import ResponseCodes
from forestgate.payments.routetable import RouteTable
from forestgate.training.trainer.features import FeatureTables, utc_offsets

# Exact for counts, codes, flags and rates; the running sum of approved amounts (the card's
# typical amount) is added in another order by DuckDB, hence a relative tolerance.
RTOL = 1e-6


def requests(data_dir: Path) -> list[tuple[pf.Request, pf.Answer]]:
    a = pq.read_table(data_dir / "attempts.parquet")
    a = a.set_column(
        a.schema.get_field_index("ts_utc"), "ts_utc", a["ts_utc"].cast(pa.timestamp("ms", "UTC"))
    )
    issuers = dict(
        zip(
            *pq.read_table(data_dir / "bins.parquet", columns=["bin8", "issuer_id"])
            .to_pydict()
            .values(),
            strict=True,
        )
    )
    cols = a.to_pydict()
    ts_ms = a["ts_utc"].cast(pa.int64()).to_pylist()
    out = []
    for i in range(a.num_rows):
        c = {k: v[i] for k, v in cols.items()}
        req = pf.Request(
            attempt_id=c["attempt_id"],
            payment_id=c["payment_id"],
            ts_ms=ts_ms[i],
            card_key=c["par"] or c["pan_hash"],
            bin8=c["bin8"],
            issuer_id=issuers.get(c["bin8"], "BIN" + c["bin8"]),
            issuer_country=c["issuer_country"],
            merchant_id=c["merchant_id"],
            merchant_country=c["merchant_country"],
            route_id=c["route_id"],
            amount_usd=c["amount_usd"],
            fx_needed=c["fx_needed"],
            months_to_expiry=c["months_to_expiry"],
            attempt_no=c["attempt_no"],
            is_retry=c["is_retry"],
            local_hour=c["local_hour"],
            dow=c["dow"],
            dom=c["dom"],
            brand=c["brand"],
            funding=c["funding"],
            product_tier=c["product_tier"],
            is_commercial=c["is_commercial"],
            mcc=int(c["mcc"]),
            channel=c["channel"],
            cit=c["cit_mit"] == "CIT",
            cof_type=c["cof_type"],
            is_initial_cof=c["is_initial_cof"],
            network_token=c["network_token"],
            three_ds=c["three_ds"],
            challenge=c["challenge"],
            sca_exemption=c["sca_exemption"],
            cvv_present=c["cvv_present"],
            avs_provided=c["avs_provided"],
            customer_in_session=c["customer_in_session"],
            credential_changed=c["credential_changed"],
            ip_country=c["ip_country"],
        )
        ans = pf.Answer(c["approved"], c["response_code"], c["merchant_advice_code"])
        out.append((req, ans))
    out.sort(key=lambda x: (x[0].ts_ms, x[0].attempt_id))
    return out


def matrix(table: pa.Table, names: tuple[str, ...]) -> npt.NDArray[np.float32]:
    return np.column_stack([table[n].to_numpy() for n in names]).astype(np.float32)


def assert_same(
    name: str, sql: npt.NDArray[np.float32], online: npt.NDArray[np.float32], names: tuple[str, ...]
) -> None:
    assert sql.shape == online.shape, f"{name}: {sql.shape} rows from SQL, {online.shape} online"
    same = np.isclose(sql, online, rtol=RTOL, atol=0, equal_nan=True)
    bad = {names[j]: int((~same[:, j]).sum()) for j in range(len(names)) if not same[:, j].all()}
    assert not bad, f"{name}: features that differ (rows): {bad}"


def test_sql_equals_online(data_dir: Path, tables: FeatureTables) -> None:
    state = pf.FeatureState(
        routes=RouteTable.load(), codes=ResponseCodes.load(), utc_offset_s=utc_offsets(data_dir)
    )
    approval_rows = {a: i for i, a in enumerate(tables.approval["attempt_id"].to_pylist())}
    routes: dict[int, list[tuple[int, str]]] = defaultdict(list)
    rc = tables.route_candidates
    for i, (a, r) in enumerate(
        zip(rc["attempt_id"].to_pylist(), rc["route_id"].to_pylist(), strict=True)
    ):
        routes[a].append((i, r))
    retries: dict[str, dict[int, list[tuple[int, int, str]]]] = {}
    for name, t in (("retry", tables.retry), ("retry_candidates", tables.retry_candidates)):
        by_parent: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        cols = zip(
            t["parent_attempt_id"].to_pylist(),
            t["delay_s"].to_pylist(),
            t["route_id"].to_pylist(),
            strict=True,
        )
        for i, (p, d, r) in enumerate(cols):
            by_parent[p].append((i, d, r))
        retries[name] = by_parent
    online = {
        "approval": np.full((tables.approval.num_rows, len(pf.APPROVAL_FEATURES)), -1, np.float32),
        "route_candidates": np.full((rc.num_rows, len(pf.APPROVAL_FEATURES)), -1, np.float32),
        "retry": np.full((tables.retry.num_rows, len(pf.RETRY_FEATURES)), -1, np.float32),
        "retry_candidates": np.full(
            (tables.retry_candidates.num_rows, len(pf.RETRY_FEATURES)), -1, np.float32
        ),
    }
    for req, ans in requests(data_dir):
        if (i := approval_rows.get(req.attempt_id)) is not None:
            online["approval"][i] = state.approval(req)
        for i, route in routes.get(req.attempt_id, ()):
            online["route_candidates"][i] = state.approval(req, route)
        state.observe(req, ans)
        for name, by_parent in retries.items():
            for i, delay_s, route in by_parent.get(req.attempt_id, ()):
                online[name][i] = state.retry(req, delay_s=delay_s, route_id=route)
    for name, names in (
        ("approval", pf.APPROVAL_FEATURES),
        ("route_candidates", pf.APPROVAL_FEATURES),
        ("retry", pf.RETRY_FEATURES),
        ("retry_candidates", pf.RETRY_FEATURES),
    ):
        table = getattr(tables, name)
        assert table.num_rows > 0, f"{name} is empty"
        assert_same(name, matrix(table, names), online[name], names)
