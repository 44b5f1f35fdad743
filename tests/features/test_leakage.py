"""Leakage: no response-side or truth column is a feature, the SQL never reads the truth tables,
and the answer of the attempt being scored does not reach its own features."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from forestgate.payments import features as pf
from forestgate.training.trainer.features import REQUIRED, FeatureTables, extract
from tests.features.conftest import CANDIDATES_FROM
from tests.features.mutate import feature_rows, moved, replace, rewrite


def test_no_response_side_or_truth_column_is_a_feature(data_dir: Path) -> None:
    truth = {
        name
        for path in data_dir.glob("truth*.parquet")
        for name in pq.read_schema(path).names
        if name not in {"attempt_id", "card_id", "issuer_id", "route_id", "issuer_country"}
    }
    assert truth and truth <= pf.RESPONSE_SIDE, truth - pf.RESPONSE_SIDE
    for names in (pf.APPROVAL_FEATURES, pf.RETRY_FEATURES):
        assert not set(names) & pf.RESPONSE_SIDE
        assert len(set(names)) == len(names)
        assert set(names) <= set(pf.SPECS)


def test_the_sql_reads_no_truth_table() -> None:
    assert not any("truth" in name for name in REQUIRED)
    sql = resources.files("forestgate.training.trainer").joinpath("sql")
    texts = {p.name: p.read_text() for p in sql.iterdir() if p.name.endswith(".sql")}
    assert len(texts) >= 5
    for name, text in texts.items():
        assert not re.search(r"truth|read_parquet|\.parquet|pay_cycle", text), name


def test_the_current_answer_does_not_reach_its_own_features(
    data_dir: Path, tables: FeatureTables, tmp_path: Path
) -> None:
    # Attempt c's answer (every response-side column of it) and everything after it rewritten:
    # the features of c and of every row before it stay the same.
    attempts = pq.read_table(data_dir / "attempts.parquet", columns=["attempt_id", "ts_utc"])
    order = np.lexsort((attempts["attempt_id"].to_numpy(), attempts["ts_utc"].to_numpy()))
    position = int(0.7 * len(order))
    current = int(attempts["attempt_id"][int(order[position])].as_py())

    def chosen(t: pa.Table) -> npt.NDArray[np.bool_]:
        rank = np.empty(t.num_rows, dtype=np.int64)
        rank[np.lexsort((t["attempt_id"].to_numpy(), t["ts_utc"].to_numpy()))] = np.arange(
            t.num_rows
        )
        return rank >= position

    def shuffle(t: pa.Table, rows: npt.NDArray[np.bool_]) -> pa.Table:
        rng = np.random.default_rng(5)
        idx = np.flatnonzero(rows)
        for name in sorted(pf.RESPONSE_SIDE & set(t.column_names)):
            column = t[name].combine_chunks()
            perm = np.arange(t.num_rows)
            perm[idx] = rng.permutation(idx)
            values = column.take(pa.array(perm))
            if name == "approved":  # the current attempt's outcome surely changes
                values = pa.compute.if_else(pa.array(rows), pa.compute.invert(column), column)
            t = replace(t, name, values)
        return t

    rewrite(data_dir, tmp_path / "shuffled", chosen, shuffle)
    changed = extract(tmp_path / "shuffled", candidates_from=CANDIDATES_FROM)
    ids = tables.approval["attempt_id"].to_numpy()
    ts = tables.approval["ts_utc"].to_numpy()
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.lexsort((ids, ts))] = np.arange(len(ids))
    upto = rank <= position
    assert ids[rank == position][0] == current
    before = feature_rows(tables, "approval", pf.APPROVAL_FEATURES, upto)
    after = feature_rows(changed, "approval", pf.APPROVAL_FEATURES)
    assert not moved(before, after, pf.APPROVAL_FEATURES)
    later = feature_rows(tables, "approval", pf.APPROVAL_FEATURES, ~upto)
    assert moved(later, after, pf.APPROVAL_FEATURES).get("card_declines_24h", 0) > 100
