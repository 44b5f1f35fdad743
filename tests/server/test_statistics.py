"""Triton's figures for one model version, fed with the batches and refusals a batcher reports."""

from __future__ import annotations

from forestgate.server.batcher import BatchStats
from forestgate.server.statistics import VersionStatistics


def batch(
    rows: int, waits: list[int], *, error: Exception | None = None, settled: bool = True
) -> BatchStats:
    """A batch formed at 1000 ns that took 10 ns of input, 100 of compute, 5 of output."""
    return BatchStats(
        rows=rows, requests=len(waits), queue_wait_ns=waits, compute_ns=100, formed_ns=1_000,
        contexts=[None] * len(waits), error=error, input_ns=10, output_ns=5, settled=settled,
    )  # fmt: skip


def test_each_request_of_a_batch_is_charged_the_whole_batch() -> None:
    stats = VersionStatistics()
    stats.on_batch(batch(3, [40, 60]))
    stats.on_batch(batch(1, [0]))
    assert (stats.inference_count, stats.execution_count) == (4, 2)
    assert (stats.success.count, stats.success.ns) == (3, 100 + 3 * 115)
    assert (stats.queue.count, stats.queue.ns) == (3, 100)
    assert (stats.compute_input.count, stats.compute_input.ns) == (3, 30)
    assert (stats.compute_infer.count, stats.compute_infer.ns) == (3, 300)
    assert (stats.compute_output.count, stats.compute_output.ns) == (3, 15)
    three = stats.batch_sizes[3]
    assert (three.compute_infer.count, three.compute_infer.ns) == (1, 100)
    assert (three.compute_input.ns, three.compute_output.ns) == (10, 5)
    assert sorted(stats.batch_sizes) == [1, 3]
    assert stats.last_inference_ns == 1_115


def test_an_engine_error_fails_every_request_of_its_batch_and_executes_nothing() -> None:
    stats = VersionStatistics()
    stats.on_batch(batch(2, [7, 9], error=ValueError("engine fault")))
    assert (stats.fail.count, stats.fail.ns) == (2, 16 + 2 * 115)
    assert (stats.success.count, stats.execution_count, stats.inference_count) == (0, 0, 0)
    assert stats.batch_sizes == {}


def test_a_large_request_counts_once_with_its_last_chunk() -> None:
    stats = VersionStatistics()
    stats.on_batch(batch(8, [0], settled=False))
    stats.on_batch(batch(8, [115], settled=False))
    stats.on_batch(batch(4, [230]))
    assert (stats.execution_count, stats.inference_count) == (3, 20)
    assert stats.batch_sizes[8].compute_infer.count == 2
    assert (stats.success.count, stats.queue.count, stats.queue.ns) == (1, 1, 230)


def test_a_refusal_is_a_failure_that_took_no_time() -> None:
    stats = VersionStatistics()
    for reason in ("overloaded", "invalid", "deadline_expired"):
        stats.on_reject(reason, None)  # type: ignore[arg-type]
    assert (stats.fail.count, stats.fail.ns) == (3, 0)
    assert stats.last_inference_ms(now_ns=5_000_000, wall_now_ns=9_000_000) == 0


def test_last_inference_is_wall_milliseconds_from_the_batcher_clock() -> None:
    stats = VersionStatistics()
    stats.on_batch(batch(1, [0]))  # results at 1_115 ns on the batcher's clock
    # 3_001_115 ns later on the batcher's clock, the wall clock read 1_700_000_000_000_000_000.
    wall_ms = stats.last_inference_ms(now_ns=3_002_230, wall_now_ns=1_700_000_000_000_000_000)
    assert wall_ms == (1_700_000_000_000_000_000 - 3_001_115) // 1_000_000
