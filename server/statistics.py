"""Triton's model statistics for one model version: plain counters fed by its batcher's observer.

The figures are those of Triton's ModelStatistics RPC (server/triton.py builds the message):
request counts and cumulative durations for success, failure, queue, compute input, compute
infer and compute output; inference (row) and execution (engine call) counts; and the same
compute durations per batch size. They are updated on the event loop once per batch or refusal,
with additions only: no lock, no clock reading and no allocation beyond a new batch size's entry.

As in Triton, a request in a batch is charged the whole batch's input, infer and output time,
so a request's queue + compute_input + compute_infer + compute_output is its success time, from
enqueue to its result. A request larger than max_batch_rows is scored in chunks; it counts once,
with its last chunk, whose queue time includes the earlier chunks. A refused request (queue
full, shed, deadline passed, cancelled, draining, invalid input) counts as a failure that took no
time: it never ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from forestgate.server.batcher import BatchStats, RejectReason


@dataclass(slots=True)
class Duration:
    """Triton's StatisticDuration: how many, and their cumulative nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, count: int, ns: int) -> None:
        self.count += count
        self.ns += ns


@dataclass(slots=True)
class BatchSizeStats:
    """Triton's InferBatchStatistics: the engine calls of one batch size (count = calls)."""

    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


class VersionStatistics:
    """One model version's figures, in Triton's terms; a BatchObserver."""

    __slots__ = (
        "batch_sizes", "compute_infer", "compute_input", "compute_output", "execution_count",
        "fail", "inference_count", "last_inference_ns", "queue", "success",
    )  # fmt: skip

    def __init__(self) -> None:
        self.success = Duration()
        self.fail = Duration()
        self.queue = Duration()
        self.compute_input = Duration()
        self.compute_infer = Duration()
        self.compute_output = Duration()
        self.inference_count = 0  # rows scored
        self.execution_count = 0  # engine calls that succeeded
        self.last_inference_ns = 0  # batcher clock (monotonic) at the last results; 0: never
        self.batch_sizes: dict[int, BatchSizeStats] = {}

    def on_batch(self, batch: BatchStats) -> None:
        spent_ns = batch.input_ns + batch.compute_ns + batch.output_ns
        self.last_inference_ns = batch.formed_ns + spent_ns
        requests = batch.requests
        waited_ns = sum(batch.queue_wait_ns)
        if batch.error is not None:
            self.fail.add(requests, waited_ns + requests * spent_ns)
            return
        self.execution_count += 1
        self.inference_count += batch.rows
        size = self.batch_sizes.get(batch.rows)
        if size is None:
            size = self.batch_sizes[batch.rows] = BatchSizeStats()
        size.compute_input.add(1, batch.input_ns)
        size.compute_infer.add(1, batch.compute_ns)
        size.compute_output.add(1, batch.output_ns)
        if not batch.settled:
            return  # a large request's chunk: the request counts with its last one
        self.success.add(requests, waited_ns + requests * spent_ns)
        self.queue.add(requests, waited_ns)
        self.compute_input.add(requests, requests * batch.input_ns)
        self.compute_infer.add(requests, requests * batch.compute_ns)
        self.compute_output.add(requests, requests * batch.output_ns)

    def on_reject(self, reason: RejectReason, context: object) -> None:
        self.fail.count += 1

    def last_inference_ms(self, *, now_ns: int, wall_now_ns: int) -> int:
        """last_inference as Triton gives it, milliseconds since the epoch (0: never), from
        readings of the batcher's clock (`now_ns`) and the wall clock taken together."""
        if not self.last_inference_ns:
            return 0
        return (wall_now_ns - (now_ns - self.last_inference_ns)) // 1_000_000
