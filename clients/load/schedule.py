"""Schedule: when each call is due (ghz's load pacers) and how many workers run (worker tickers).

Rates follow ghz's `load/pacer.go`: const sends call h at (h+1)/rps; step starts at load-start
and changes by load-step every load-step-duration; line is step with a 1 s step and load-step as
the slope. The end rate is held from the first step that passes it (or from load-max-duration,
where an unset end is start + step * steps). A rate that steps down to 0 with nothing to hold
ends the run. Workers follow `load/worker_ticker.go` the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from forestgate.clients.load.options import LoadOptions

SECOND_NS = 1_000_000_000


@dataclass(frozen=True)
class RateSchedule:
    """Due offsets (ns from the start) of calls 0, 1, 2, ...; `rps` 0 means no pacing."""

    kind: str  # const | step | line
    rps: int = 0
    start: int = 0
    step: int = 0
    end: int = 0
    step_ns: int = 0
    max_ns: int = 0

    @classmethod
    def from_options(cls, o: LoadOptions) -> RateSchedule:
        if o.load_schedule == "const":
            return cls("const", rps=o.rps)
        step_ns = SECOND_NS if o.load_schedule == "line" else o.load_step_duration_ns
        return cls(
            o.load_schedule, start=o.load_start, step=o.load_step, end=o.load_end,
            step_ns=step_ns, max_ns=o.load_max_duration_ns,
        )  # fmt: skip

    @property
    def paced(self) -> bool:
        return self.kind != "const" or self.rps > 0

    def dues(self) -> Iterator[int]:
        """Every call's due offset in ns, in order; ends when the schedule stops sending."""
        if self.kind == "const":
            interval = SECOND_NS // self.rps
            h = 0
            while True:
                h += 1
                yield h * interval
        yield from self._stepped()

    def _rate(self, j: int) -> float:
        return max(0.0, float(self.start + self.step * j))

    def _hold(self) -> tuple[int | None, float]:
        """(constAt in ns or None, the rate held from then on) as StepPacer.initialize."""
        if self.max_ns > 0:
            held = self.end if self.end else self.start + self.step * (self.max_ns // self.step_ns)
            return self.max_ns, max(0.0, float(held))
        if self.end > 0:
            j = 0
            while True:
                r = self._rate(j)
                if (self.step > 0 and r > self.end) or (self.step < 0 and r < self.end):
                    return j * self.step_ns, float(self.end)
                if self.step < 0 and r == 0:  # never below a positive end: hold it at once
                    return j * self.step_ns, float(self.end)
                j += 1
        return None, 0.0

    def _stepped(self) -> Iterator[int]:
        hold_at, held = self._hold()
        h = 0  # calls sent so far
        cum = 0.0  # calls due by the start of the current segment
        j = 0
        while hold_at is None or j * self.step_ns < hold_at:
            seg_start = j * self.step_ns
            seg_end = seg_start + self.step_ns
            if hold_at is not None:
                seg_end = min(seg_end, hold_at)
            r = self._rate(j)
            if r > 0:
                while True:
                    due = seg_start + (h + 1 - cum) / r * SECOND_NS
                    if due > seg_end:
                        break
                    h += 1
                    yield int(due)
            elif self.step < 0 and hold_at is None:
                return  # stepped down to nothing, and no end rate to hold
            cum += r * (seg_end - seg_start) / SECOND_NS
            j += 1
        if held <= 0 or hold_at is None:
            return
        base = int(cum)
        k = h - base
        while True:
            k += 1
            yield hold_at + int(k * SECOND_NS / held)

    def rate_at(self, t_ns: int) -> float:
        """The intended rate at an offset, for reports."""
        if self.kind == "const":
            return float(self.rps)
        hold_at, held = self._hold()
        if hold_at is not None and t_ns >= hold_at:
            return held
        return self._rate(t_ns // self.step_ns)


@dataclass(frozen=True)
class WorkerSchedule:
    """(offset ns, worker delta) events; const starts every worker at once."""

    kind: str
    count: int = 0
    start: int = 0
    step: int = 0
    end: int = 0
    step_ns: int = 0
    max_ns: int = 0

    @classmethod
    def from_options(cls, o: LoadOptions, workers: int) -> WorkerSchedule:
        if o.concurrency_schedule == "const":
            return cls("const", count=workers)
        step_ns = SECOND_NS if o.concurrency_schedule == "line" else o.concurrency_step_duration_ns
        return cls(
            o.concurrency_schedule, start=o.concurrency_start, step=o.concurrency_step,
            end=o.concurrency_end, step_ns=step_ns, max_ns=o.concurrency_max_duration_ns,
        )  # fmt: skip

    def events(self) -> Iterator[tuple[int, int]]:
        if self.kind == "const":
            yield 0, self.count
            return
        workers = self.start
        up = self.step > 0
        yield 0, self.start
        t = 0
        while True:
            t += self.step_ns
            if self.max_ns > 0 and t >= self.max_ns:
                if self.end > 0 and (
                    (up and self.end >= workers) or (not up and self.end <= workers)
                ):
                    yield t, self.end - workers
                return
            if self.max_ns == 0 and (
                (self.end > 0 and up and workers >= self.end) or (not up and workers <= self.end)
            ):
                return
            yield t, self.step
            workers += self.step
