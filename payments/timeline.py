"""Effective-dated configuration values: a value per half-open date range [from, to), the ranges
contiguous from the beginning of time to the end of it, so a lookup on any date has one answer.

Scheme rules change on known dates (Visa's reattempt cap went 15 -> 20 on 2025-05-25) and sources
disagree, so every rule value in rules.yaml is written as a list of periods::

    - {to: 2025-05-25, value: 15, source: "[V8]"}
    - {from: 2025-05-25, value: 20, source: "[V11]"}

Overlaps and gaps are configuration errors naming the file and line, raised at load time.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from forestgate.payments.document import Node

T = TypeVar("T")

PERIOD_FIELDS = ("from", "to", "source")


@dataclass(frozen=True, slots=True)
class Period(Generic[T]):
    """``value`` is in force on dates ``start <= d < end``; None means unbounded."""

    start: dt.date | None
    end: dt.date | None
    value: T
    line: int

    def covers(self, day: dt.date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day < self.end)


@dataclass(frozen=True, slots=True)
class Timeline(Generic[T]):
    """A value that changes on known dates; ``at(day)`` is total by construction."""

    periods: tuple[Period[T], ...]

    def at(self, day: dt.date) -> T:
        for period in self.periods:
            if period.covers(day):
                return period.value
        # parse_timeline rejects gaps and open ends, so this is unreachable for loaded files.
        raise LookupError(f"no value in force on {day.isoformat()}")

    @classmethod
    def constant(cls, value: T) -> Timeline[T]:
        return cls((Period(None, None, value, 0),))

    def changes(self) -> tuple[dt.date, ...]:
        """The dates on which the value changes."""
        return tuple(p.start for p in self.periods if p.start is not None)


def parse_timeline(
    node: Node,
    read: Callable[[Node, dict[str, Node]], T],
    *,
    value_fields: Iterable[str] = ("value",),
) -> Timeline[T]:
    """Read a list of periods; ``read`` turns one period's mapping (and its value fields) into T.

    Checks: each period's ``from`` < ``to``; periods in date order without overlap or gap; the
    first open at the start and the last open at the end.
    """
    value_fields = tuple(value_fields)
    items = node.sequence()
    if not items:
        raise node.error("expected at least one effective-dated period")
    periods: list[tuple[Period[T], Node]] = []
    for item in items:
        fields = item.fields(required=(), optional=PERIOD_FIELDS + value_fields)
        if "value" in value_fields and "value" not in fields:
            raise item.error("missing field 'value'")
        start = fields["from"].date() if "from" in fields else None
        end = fields["to"].date() if "to" in fields else None
        if start is not None and end is not None and not start < end:
            raise item.error(f"empty period: from {start} is not before to {end}")
        periods.append((Period(start, end, read(item, fields), item.line), item))
    periods.sort(key=lambda pair: (pair[0].start is not None, pair[0].start or dt.date.min))
    for (prev, _), (cur, cur_node) in itertools.pairwise(periods):
        if prev.end is None or cur.start is None or cur.start < prev.end:
            raise cur_node.error(
                f"overlapping effective dates: this period (from {_day(cur.start)}) overlaps "
                f"the period on line {prev.line} (to {_day(prev.end, end=True)})"
            )
        if cur.start > prev.end:
            raise cur_node.error(
                f"gap in effective dates: nothing in force from {prev.end} (line {prev.line}) "
                f"to {cur.start}"
            )
    first, first_node = periods[0]
    if first.start is not None:
        raise first_node.error(
            "the first period must have no 'from': the rule must be defined on every date"
        )
    last, last_node = periods[-1]
    if last.end is not None:
        raise last_node.error(
            "the last period must have no 'to': the rule must be defined on every date"
        )
    ordered = [period for period, _ in periods]
    return Timeline(tuple(ordered))


def _day(day: dt.date | None, *, end: bool = False) -> str:
    if day is None:
        return "the end" if end else "the beginning"
    return day.isoformat()
