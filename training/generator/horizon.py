"""The simulated time span: seconds since its start, local calendar fields, and the payday
calendar of every pay cycle (docs/generator.md, "Time and arrivals" and "Pay cycles").

Time inside the generator is int64 seconds since the horizon's first midnight UTC; local fields
use each country's fixed UTC offset (no daylight saving: one hour of skew changes no result).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from forestgate.training.generator.countries import PAY_CYCLES

DAY_S = 86_400
HOUR_S = 3_600
# Paydays are listed this far either side of the horizon so every time has a last and a next one.
MARGIN_DAYS = 45

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Horizon:
    """``days`` days from ``start`` (midnight UTC)."""

    start: dt.date
    days: int

    @property
    def start_epoch_s(self) -> int:
        return int(dt.datetime(self.start.year, self.start.month, self.start.day,
                               tzinfo=dt.UTC).timestamp())  # fmt: skip

    @property
    def end_s(self) -> int:
        return self.days * DAY_S

    def day_of(self, date: dt.date) -> int:
        """Index of ``date`` relative to the start (may be negative or past the end)."""
        return (date - self.start).days

    def date_of(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=day)

    def expiry_end_s(self, expiry_month: I64) -> I64:
        """Start (midnight UTC) of the month after ``expiry_month`` (year * 12 + month - 1): a
        card is valid through the last day of its printed expiry month."""
        months = np.asarray(expiry_month, dtype=np.int64) + 1 - 1970 * 12
        first = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
        start = np.datetime64(self.start.isoformat(), "D").astype(np.int64)
        return (first - start) * DAY_S

    def local(self, ts_s: I64, offset_h: F64) -> LocalTime:
        """Local calendar fields of UTC times ``ts_s`` at fixed offsets ``offset_h`` hours."""
        local_s = ts_s + np.round(offset_h * HOUR_S).astype(np.int64)
        day = np.floor_divide(local_s, DAY_S)
        seconds = local_s - day * DAY_S
        table = self.calendar()
        idx = day + MARGIN_DAYS
        return LocalTime(
            day=day,
            hour=(seconds // HOUR_S).astype(np.int64),
            seconds_of_day=seconds,
            dow=table.dow[idx],
            dom=table.dom[idx],
            month=table.month_index[idx],
        )

    def calendar(self) -> Calendar:
        return _calendar(self.start, self.days)


@dataclass(frozen=True, slots=True)
class LocalTime:
    day: I64  # local day index relative to the horizon start
    hour: I64
    seconds_of_day: I64
    dow: I64  # ISO: Monday 1 ... Sunday 7
    dom: I64
    month: I64  # year * 12 + month - 1


@dataclass(frozen=True, slots=True)
class Calendar:
    """Per-day fields for days -MARGIN_DAYS ... days + MARGIN_DAYS (index = day + MARGIN_DAYS)."""

    first_day: int
    dates: tuple[dt.date, ...]
    dow: I64
    dom: I64
    month_index: I64
    days_in_month: I64


_CALENDARS: dict[tuple[dt.date, int], Calendar] = {}


def _calendar(start: dt.date, days: int) -> Calendar:
    key = (start, days)
    if key not in _CALENDARS:
        dates = tuple(
            start + dt.timedelta(days=d) for d in range(-MARGIN_DAYS, days + MARGIN_DAYS + 1)
        )
        dim = []
        for d in dates:
            nxt = dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)
            dim.append((nxt - dt.timedelta(days=1)).day)
        _CALENDARS[key] = Calendar(
            first_day=-MARGIN_DAYS,
            dates=dates,
            dow=np.array([d.isoweekday() for d in dates], dtype=np.int64),
            dom=np.array([d.day for d in dates], dtype=np.int64),
            month_index=np.array([d.year * 12 + d.month - 1 for d in dates], dtype=np.int64),
            days_in_month=np.array(dim, dtype=np.int64),
        )
    return _CALENDARS[key]


def _previous_workday(d: dt.date) -> dt.date:
    while d.isoweekday() > 5:
        d -= dt.timedelta(days=1)
    return d


def _paydays(cycle: str, phase: int, dates: tuple[dt.date, ...]) -> list[dt.date]:
    out: set[dt.date] = set()
    for d in dates:
        last = d.day == _days_in_month(d)
        if (cycle == "weekly_fri" and d.isoweekday() == 5) or (
            cycle == "biweekly_fri" and d.isoweekday() == 5 and (d.toordinal() // 7) % 2 == phase
        ):
            out.add(d)
        elif (
            (cycle == "semimonthly_1_15" and d.day in (1, 15))
            or (cycle == "semimonthly_15_last" and (d.day == 15 or last))
            or (cycle == "monthly_last_workday" and last)
            or (cycle == "monthly_25" and d.day == 25)
            or (cycle == "monthly_1" and d.day == 1)
        ):
            out.add(_previous_workday(d))
    return sorted(out)


def _days_in_month(d: dt.date) -> int:
    nxt = dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return (nxt - dt.timedelta(days=1)).day


@dataclass(frozen=True, slots=True)
class PaydayCalendar:
    """Paydays of every (cycle, phase) as local day indices; lookups are vectorised.

    A cycle key is ``cycle_index * 2 + phase``; only biweekly cycles use phase 1.
    """

    horizon: Horizon
    keys: I64 = field(repr=False)  # sorted composite key * _STRIDE + day
    rows: tuple[tuple[str, int, dt.date], ...] = field(repr=False)

    @classmethod
    def build(cls, horizon: Horizon) -> PaydayCalendar:
        dates = horizon.calendar().dates
        keys: list[int] = []
        rows: list[tuple[str, int, dt.date]] = []
        for ci, cycle in enumerate(PAY_CYCLES):
            for phase in (0, 1):
                for d in _paydays(cycle, phase, dates):
                    keys.append((ci * 2 + phase) * _STRIDE + horizon.day_of(d) + _OFFSET)
                    rows.append((cycle, phase, d))
        order = np.argsort(np.array(keys, dtype=np.int64), kind="stable")
        return cls(
            horizon=horizon,
            keys=np.array(keys, dtype=np.int64)[order],
            rows=tuple(rows[i] for i in order),
        )

    def around(self, cycle_key: I64, local_day: I64) -> tuple[I64, I64]:
        """(last payday <= local_day, next payday > local_day) as local day indices."""
        probe = cycle_key * _STRIDE + local_day + _OFFSET
        pos = np.searchsorted(self.keys, probe, side="right")
        last = self.keys[pos - 1] - cycle_key * _STRIDE - _OFFSET
        nxt = self.keys[np.minimum(pos, len(self.keys) - 1)] - cycle_key * _STRIDE - _OFFSET
        return last.astype(np.int64), nxt.astype(np.int64)


_STRIDE = 1 << 20
_OFFSET = 1 << 16
