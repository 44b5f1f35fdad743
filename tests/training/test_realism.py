"""The realism targets of docs/generator.md, "Realism targets", on the small preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from forestgate.training.generator.realism import TARGETS, Statistics, statistics

# On about 60k attempts a few statistics rest on a few hundred events; their target ranges are
# widened by roughly two standard errors so the test checks the generator, not the dice.
SAMPLING_SLACK = {
    "token_uplift_pp": 0.8,
    "decline_share_technical": 0.005,
    "decline_share_limit": 0.004,
    "decline_share_fraud": 0.005,
    "fraud_bp_approved": 2.0,
    "fraud_xb_non_sca_ratio": 1.0,
    "recovery_nsf": 0.05,
    "recovery_05": 0.04,
    "recovery_technical": 0.05,
}
CHECKED = [name for name in TARGETS if name != "us_3ds_effect_pp"]


@pytest.fixture(scope="module")
def stats(small_dir: Path) -> Statistics:
    return statistics(small_dir)


@pytest.mark.parametrize("name", CHECKED)
def test_statistic_within_target(stats: Statistics, name: str) -> None:
    lo, hi = TARGETS[name]
    slack = SAMPLING_SLACK.get(name, 0.0)
    value = stats.values[name]
    if lo is not None:
        assert value >= lo - slack, f"{name} = {value:.4f}, target >= {lo}"
    if hi is not None:
        assert value <= hi + slack, f"{name} = {value:.4f}, target <= {hi}"


def test_route_effects_are_ordered(stats: Statistics) -> None:
    v = stats.values
    assert v["approval_domestic"] > v["approval_xb_local"] > v["approval_xb_nonlocal"]


def test_sca_soft_declines_come_from_eea_issuers_only(stats: Statistics) -> None:
    assert stats.values["decline_share_sca"] > 0
    assert stats.values["decline_share_sca_outside_eea"] == 0


def test_category_1_is_never_recovered_but_retried_by_legacy(stats: Statistics) -> None:
    v = stats.values
    assert v["recovery_cat1_n"] > 20
    assert v["recovery_cat1"] == 0.0
    assert v["recovery_nsf"] > v["recovery_cat1"]


def test_cross_border_share_of_customer_volume(stats: Statistics) -> None:
    assert 0.30 <= stats.values["share_xb_cit"] <= 0.40
