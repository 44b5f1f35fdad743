"""Presets and seeds are validated with errors that name the field."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from forestgate.errors import InvalidInput
from forestgate.training.generator import presets
from forestgate.training.generator.cards import luhn_check_digit, luhn_valid
from forestgate.training.generator.horizon import Horizon, PaydayCalendar


@pytest.mark.parametrize("value", [0, 7, "12", " 5 ", presets.MAX_SEED])
def test_good_seeds(value: object) -> None:
    assert presets.seed(value) == int(str(value).strip())


@pytest.mark.parametrize("value", [-1, True, 1.0, "1e3", "-2", "", None, presets.MAX_SEED + 1, "٣"])
def test_bad_seeds(value: object) -> None:
    with pytest.raises(InvalidInput, match=r"^seed: "):
        presets.seed(value)


def test_presets() -> None:
    assert presets.preset("small").attempts < presets.preset("default").attempts == 1_000_000
    with pytest.raises(InvalidInput, match=r"^preset: expected one of small, default"):
        presets.preset("Small")


def test_luhn() -> None:
    payload = np.array([[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
    assert luhn_check_digit(payload).tolist() == [1]
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


def test_paydays() -> None:
    horizon = Horizon(dt.date(2025, 8, 4), 60)
    cal = PaydayCalendar.build(horizon)
    days = {(c, p, d) for c, p, d in cal.rows}
    # 31 August 2025 is a Sunday: the last working day is Friday the 29th.
    assert ("monthly_last_workday", 0, dt.date(2025, 8, 29)) in days
    assert ("monthly_last_workday", 0, dt.date(2025, 8, 31)) not in days
    # 15 November 2025 is a Saturday: semi-monthly pay moves back to Friday the 14th.
    assert ("semimonthly_1_15", 0, dt.date(2025, 8, 15)) in days
    key = np.array([4 * 2, 4 * 2])  # monthly_last_workday, phase 0
    last, nxt = cal.around(key, np.array([horizon.day_of(dt.date(2025, 9, 10))] * 2))
    assert horizon.date_of(int(last[0])) == dt.date(2025, 8, 29)
    assert horizon.date_of(int(nxt[0])) == dt.date(2025, 9, 30)
