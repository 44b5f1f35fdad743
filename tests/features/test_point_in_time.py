"""Point in time: rewrite every attempt after a cutoff (amounts, outcomes, codes, advice, routes,
cards' merchants, timestamps pushed later) and prove that no feature of any row at or before the
cutoff moved, in all four tables (exact equality, NaN equal to NaN)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from forestgate.payments import features as pf
from forestgate.training.trainer.features import FeatureTables, extract
from tests.features.conftest import CANDIDATES_FROM
from tests.features.mutate import feature_rows, moved, replace, rewrite, where

CUTOFF = CANDIDATES_FROM + dt.timedelta(days=25, hours=7, minutes=13)


def _after(table: pa.Table) -> npt.NDArray[np.bool_]:
    return np.asarray(pc.greater(table["ts_utc"], pa.scalar(CUTOFF, table["ts_utc"].type)))


def _scramble(t: pa.Table, rows: npt.NDArray[np.bool_]) -> pa.Table:
    rng = np.random.default_rng(3)
    n = t.num_rows
    routes = np.array(sorted(set(t["route_id"].to_pylist())))
    codes = np.array(sorted(set(t["response_code"].to_pylist())))
    t = replace(
        t,
        "amount_minor",
        where(rows, pa.array(t["amount_minor"].to_numpy() * 3 + 7), t["amount_minor"]),
    )
    t = replace(
        t,
        "amount_usd",
        where(rows, pa.array(t["amount_usd"].to_numpy() * 3.1 + 1), t["amount_usd"]),
    )
    t = replace(t, "approved", where(rows, pc.invert(t["approved"]), t["approved"]))
    t = replace(t, "response_code", where(rows, pa.array(rng.choice(codes, n)), t["response_code"]))
    t = replace(
        t,
        "merchant_advice_code",
        where(rows, pa.array(rng.choice(["24", "03", "01"], n)), t["merchant_advice_code"]),
    )
    t = replace(t, "route_id", where(rows, pa.array(rng.choice(routes, n)), t["route_id"]))
    t = replace(t, "merchant_id", where(rows, pc.utf8_reverse(t["merchant_id"]), t["merchant_id"]))
    shifted = pc.add(t["ts_utc"], pa.scalar(dt.timedelta(hours=5, seconds=17)))
    return replace(t, "ts_utc", where(rows, shifted.cast(t["ts_utc"].type), t["ts_utc"]))


def test_rows_after_the_cutoff_never_move_earlier_features(
    data_dir: Path, tables: FeatureTables, tmp_path: Path
) -> None:
    rewrite(data_dir, tmp_path / "scrambled", _after, _scramble)
    changed = extract(tmp_path / "scrambled", candidates_from=CANDIDATES_FROM)
    cutoff = pa.scalar(CUTOFF, pa.timestamp("us", "UTC"))
    for kind, names in (
        ("approval", pf.APPROVAL_FEATURES),
        ("route_candidates", pf.APPROVAL_FEATURES),
        ("retry", pf.RETRY_FEATURES),
        ("retry_candidates", pf.RETRY_FEATURES),
    ):
        table: pa.Table = getattr(tables, kind)
        # ts_utc is the attempt's time, or a retry candidate's send time. Which declines have
        # retry candidates depends on the logged retry (its delay must be on the grid), so a
        # candidate is compared when that retry, too, is at or before the cutoff.
        keep = np.asarray(pc.less_equal(table["ts_utc"], cutoff))
        if kind == "retry_candidates":
            logged = table.filter(table["logged"])
            done = set(
                logged.filter(pc.less_equal(logged["ts_utc"], cutoff))["attempt_id"].to_pylist()
            )
            keep &= np.isin(table["attempt_id"].to_numpy(), list(done))
        assert keep.sum() > 100 or kind.startswith("retry"), (
            f"{kind}: too few rows before the cutoff"
        )
        assert keep.any() and not keep.all(), f"{kind}: the cutoff does not split the rows"
        before = feature_rows(tables, kind, names, keep)
        assert not moved(before, feature_rows(changed, kind, names), names), kind
    # The rewrite did change later features, so the comparison above could have failed.
    late = ~np.asarray(pc.less_equal(tables.approval["ts_utc"], cutoff))
    diff = moved(
        feature_rows(tables, "approval", pf.APPROVAL_FEATURES, late),
        feature_rows(changed, "approval", pf.APPROVAL_FEATURES),
        pf.APPROVAL_FEATURES,
    )
    assert diff.get("card_declines_7d", 0) > 100 and diff.get("log_amount_usd", 0) > 100
