"""Results: every call's outcome in flat arrays, recorded in the hot loop, merged across processes.

Like ghz, the first MAX_DETAILS calls are kept one by one (latency, end time, status, error) and
every later call only adds to the counts and the latency sum; percentiles and the histogram come
from the kept ones. Arrays of machine integers cost one append per field per call.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field

import grpc
import numpy as np
import numpy.typing as npt

MAX_DETAILS = 1_000_000  # ghz's maxResult
# Go's codes.Code.String(), indexed by the status code's number.
GO_STATUS = (
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
)  # fmt: skip
# grpc-go's texts where gRPC Python words the same condition differently.
GO_DETAILS = {(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"): "context deadline exceeded"}
CLOSING = "rpc error: code = Canceled desc = grpc: the client connection is closing"


def status_number(code: grpc.StatusCode) -> int:
    return int(code.value[0])


def go_error(code: grpc.StatusCode, details: str | None) -> str:
    """err.Error() of a grpc-go status error."""
    text = GO_DETAILS.get((code, details or ""), details or "")
    return f"rpc error: code = {GO_STATUS[status_number(code)]} desc = {text}"


class Recorder:
    """One process's calls in completion order; the error texts are interned."""

    def __init__(self, capacity: int = MAX_DETAILS) -> None:
        self.capacity = capacity
        self.latency_ns = array("q")
        self.end_ns = array("q")
        self.lag_ns = array("q")  # open loop: actual send - scheduled send
        self.status = array("b")
        self.error = array("i")  # index into error_texts; 0 = no error
        self.error_texts: list[str] = [""]
        self._error_ids: dict[str, int] = {"": 0}
        self.overflow = Overflow()

    def error_id(self, text: str) -> int:
        found = self._error_ids.get(text)
        if found is None:
            found = self._error_ids[text] = len(self.error_texts)
            self.error_texts.append(text)
        return found

    def add(self, latency_ns: int, end_ns: int, status: int, error: int, lag_ns: int) -> None:
        if len(self.latency_ns) < self.capacity:
            self.latency_ns.append(latency_ns)
            self.end_ns.append(end_ns)
            self.lag_ns.append(lag_ns)
            self.status.append(status)
            self.error.append(error)
        else:
            self.overflow.add(latency_ns, status, self.error_texts[error])

    def result(self) -> Calls:
        return Calls(
            latency_ns=np.frombuffer(self.latency_ns, dtype=np.int64).copy(),
            end_ns=np.frombuffer(self.end_ns, dtype=np.int64).copy(),
            lag_ns=np.frombuffer(self.lag_ns, dtype=np.int64).copy(),
            status=np.frombuffer(self.status, dtype=np.int8).copy(),
            error=np.frombuffer(self.error, dtype=np.int32).copy(),
            error_texts=list(self.error_texts),
            overflow=self.overflow,
        )


@dataclass
class Overflow:
    """Calls past the kept details: counted, not kept."""

    count: int = 0
    latency_s: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, latency_ns: int, status: int, error: str) -> None:
        self.count += 1
        self.latency_s += latency_ns / 1e9
        self.statuses[GO_STATUS[status]] += 1
        if error:
            self.errors[error] += 1


@dataclass
class Calls:
    """Kept calls as arrays (picklable, for worker processes), in completion order."""

    latency_ns: npt.NDArray[np.int64]
    end_ns: npt.NDArray[np.int64]
    lag_ns: npt.NDArray[np.int64]
    status: npt.NDArray[np.int8]
    error: npt.NDArray[np.int32]
    error_texts: list[str]
    overflow: Overflow

    @classmethod
    def merge(cls, parts: list[Calls]) -> Calls:
        """Several processes' calls as one list in completion order (one clock: CLOCK_MONOTONIC)."""
        if len(parts) == 1:
            return parts[0]
        texts: list[str] = [""]
        ids: dict[str, int] = {"": 0}
        errors = []
        for part in parts:
            remap = np.array(
                [ids.setdefault(t, len(ids)) for t in part.error_texts], dtype=np.int32
            )
            errors.append(remap[part.error])
        texts = list(ids)
        end = np.concatenate([p.end_ns for p in parts])
        order = np.argsort(end, kind="stable")
        keep = order[:MAX_DETAILS]
        overflow = Overflow()
        for p in parts:
            overflow.count += p.overflow.count
            overflow.latency_s += p.overflow.latency_s
            overflow.statuses.update(p.overflow.statuses)
            overflow.errors.update(p.overflow.errors)
        latency = np.concatenate([p.latency_ns for p in parts])
        status = np.concatenate([p.status for p in parts])
        error = np.concatenate(errors)
        for i in order[MAX_DETAILS:]:  # past ghz's cap when merged: counted only
            overflow.add(int(latency[i]), int(status[i]), texts[int(error[i])])
        return cls(
            latency_ns=latency[keep],
            end_ns=end[keep],
            lag_ns=np.concatenate([p.lag_ns for p in parts])[keep],
            status=status[keep],
            error=error[keep],
            error_texts=texts,
            overflow=overflow,
        )


@dataclass
class RunResult:
    """A finished (or interrupted) run of one process, or several merged."""

    calls: Calls
    start_ns: int  # CLOCK_MONOTONIC
    start_wall_ns: int  # the same instant on the wall clock, for timestamps
    finish_ns: int
    end_reason: str  # normal | cancel | timeout
    open_loop: bool
    scheduled: int  # open loop: calls whose due time came
    last_due_ns: int  # open loop: the latest due time handed out (offset from start)
    procs: int = 1
    failure: str = ""  # a client-side error that ended the run (then no report)
    cpu_ns: int = 0  # CPU the load process(es) used from start to finish, all threads
