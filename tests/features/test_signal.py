"""The features carry the signal the generator put in: checks that fail if a feature is shifted,
misaligned or empty, not properties that hold of any column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow.compute as pc
import pyarrow.parquet as pq

from forestgate.payments import features as pf
from forestgate.payments.codes import ResponseCodes
from forestgate.payments.routetable import RouteTable
from forestgate.training.generator import countries, policy
from forestgate.training.trainer.features import FeatureTables, utc_offsets


def _auc(score: npt.NDArray[np.float32], label: npt.NDArray[np.bool_]) -> float:
    ok = ~np.isnan(score)
    score, label = score[ok], label[ok]
    ranks = np.empty(len(score))
    ranks[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    pos = label.sum()
    return float((ranks[label].sum() - pos * (pos + 1) / 2) / (pos * (len(label) - pos)))


def test_history_and_route_rates_predict_the_outcome(tables: FeatureTables) -> None:
    t = tables.approval
    approved = t["approved"].to_numpy(zero_copy_only=False)
    declines = t["card_declines_24h"].to_numpy()
    rate_clean = approved[declines == 0].mean()
    rate_after = approved[declines >= 2].mean()
    # The issuer sees the card's recent declines (velocity), and declines cluster on weak cards.
    assert rate_clean - rate_after > 0.10, (rate_clean, rate_after)
    assert _auc(t["issuer_route_rate_7d"].to_numpy(), approved) > 0.55
    assert _auc(t["bin_route_rate_7d"].to_numpy(), approved) > 0.55


def test_logged_candidates_equal_their_approval_rows(tables: FeatureTables) -> None:
    logged = tables.route_candidates.filter(tables.route_candidates["logged"])
    approval = tables.approval
    index = {a: i for i, a in enumerate(approval["attempt_id"].to_pylist())}
    rows = np.array([index[a] for a in logged["attempt_id"].to_pylist()])
    for name in pf.APPROVAL_FEATURES:
        a = approval[name].to_numpy()[rows]
        b = logged[name].to_numpy()
        assert np.array_equal(a, b, equal_nan=True), name
    assert logged["approved"].to_pylist() == approval["approved"].take(rows).to_pylist()


def test_candidate_propensities_are_the_logging_policy(tables: FeatureTables) -> None:
    rc = tables.retry_candidates
    logged = rc.filter(rc["logged"])
    retry = dict(
        zip(
            tables.retry["attempt_id"].to_pylist(),
            tables.retry["propensity"].to_pylist(),
            strict=True,
        )
    )
    assert logged.num_rows == len(set(rc["attempt_id"].to_pylist())) > 10
    for a, p in zip(
        logged["attempt_id"].to_pylist(), logged["propensity"].to_pylist(), strict=True
    ):
        assert abs(p - retry[a]) < 1e-12
    sums = pc.sum(rc["propensity"]).as_py()
    assert abs(sums - logged.num_rows) < 1e-9
    assert set(rc["delay_s"].to_pylist()) == set(policy.GRID_S.tolist())


def test_every_generated_label_has_a_code(data_dir: Path) -> None:
    """The generator draws its labels from these vocabularies; a label outside one would become
    a NaN feature without anyone noticing."""
    attempts = pq.read_table(data_dir / "attempts.parquet")
    vocabularies = {
        "brand": pf.BRANDS, "funding": pf.FUNDING, "product_tier": pf.TIERS,
        "channel": pf.CHANNELS, "cof_type": pf.COF_TYPES, "sca_exemption": pf.EXEMPTIONS,
        "issuer_country": pf.COUNTRIES, "merchant_country": pf.COUNTRIES,
    }  # fmt: skip
    for column, vocabulary in vocabularies.items():
        assert set(attempts.column(column).to_pylist()) <= set(vocabulary), column
    assert pf.COUNTRIES == countries.CODES
    assert pf.route_ids(RouteTable.load())[:5] == ("A-US", "A-EU", "B-GB", "C-BR", "D-XB")
    assert "1A" in pf.decline_codes(ResponseCodes.load())


def test_inferred_clocks_are_the_generators(data_dir: Path) -> None:
    expected = {c.code: round(c.utc_offset_h * 3600) for c in countries.COUNTRIES}
    assert utc_offsets(data_dir) == expected
