"""MicroBatcher through its public seams: a fake predict that records every batch, fake time."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from forestgate.errors import DeadlineExpired, Overloaded, Unavailable
from forestgate.server.batcher import BatchStats, MicroBatcher

F = 4  # features per row
MODES = ["inline", "thread"]


def run(coro: Coroutine[Any, Any, Any], timeout_s: float = 10.0) -> Any:
    """asyncio.run with a bound, so a batcher that waits when it should not fails the test."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


async def settle() -> None:
    """Let every task that is ready run (submits enqueue, the dispatcher forms batches)."""
    for _ in range(10):
        await asyncio.sleep(0)


def block(tag: int, n: int) -> np.ndarray:
    """n rows whose values are exact in float32 and unique to `tag`."""
    values = tag * 1000 + np.arange(n * F, dtype=np.float32).reshape(n, F)
    return np.ascontiguousarray(values, dtype=np.float32)


class FakeClock:
    def __init__(self, now: int = 1_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Engine:
    """Fake engine: writes column 0 of each row ([n]), or its first `width` columns ([n, width]).
    The first call can be held until `release` is set, to keep the engine busy."""

    num_features = F

    def __init__(
        self,
        *,
        width: int | None = None,
        hold_first: bool = False,
        fail_calls: tuple[int, ...] = (),
        clock: FakeClock | None = None,
        compute_ns: int = 0,
    ) -> None:
        self.width = width
        self.output_width = width or 1
        self.fail_calls = fail_calls
        self.clock = clock
        self.compute_ns = compute_ns
        self.batches: list[np.ndarray] = []
        self.threads: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def score(self, rows: np.ndarray, out: np.ndarray) -> None:
        call = len(self.batches)
        self.batches.append(rows.copy())
        self.threads.append(threading.current_thread().name)
        if call == 0:
            self.entered.set()
            assert self.release.wait(10)
        if self.clock is not None:
            self.clock.now += self.compute_ns
        if call in self.fail_calls:
            raise ValueError(f"engine fault in call {call}")
        out[...] = self.expect(rows)

    def expect(self, rows: np.ndarray) -> np.ndarray:
        return rows[:, 0] if self.width is None else rows[:, : self.width]

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """score() into a fresh array, for predict functions built on this engine."""
        out = np.empty(rows.shape[:1] if self.width is None else (len(rows), self.width))
        self.score(rows, out)
        return out

    def sizes(self) -> list[int]:
        return [len(b) for b in self.batches]

    async def busy(self) -> None:
        """Wait until the held first call is inside the engine."""
        assert await asyncio.to_thread(self.entered.wait, 5)


class Scorer:
    """An engine made of a function `predict(rows) -> [n]`, for tests that act inside a call."""

    num_features = F
    output_width = 1

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self.predict = predict

    def score(self, rows: np.ndarray, out: np.ndarray) -> None:
        out[...] = self.predict(rows)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[BatchStats] = []
        self.rejects: list[tuple[str, object]] = []

    def on_batch(self, batch: BatchStats) -> None:
        self.batches.append(batch)

    def on_reject(self, reason: str, context: object) -> None:
        self.rejects.append((reason, context))


def make(engine: Any, **kwargs: Any) -> MicroBatcher:
    """A batcher over `engine`: a fake Engine, or a predict function wrapped in a Scorer."""
    if callable(engine):
        engine = Scorer(engine)
    kwargs.setdefault("max_batch_rows", 8)
    kwargs.setdefault("max_queue_rows", 64)
    return MicroBatcher(engine, **kwargs)


# --- construction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_batch_rows": 0}, "max_batch_rows"),
        ({"max_batch_rows": 2.0}, "max_batch_rows"),
        ({"max_batch_rows": 8, "max_queue_rows": 7}, "max_queue_rows"),
        ({"max_queue_delay_us": -1}, "max_queue_delay_us"),
        ({"execution": "process"}, "execution"),
        ({"execution": "inline", "executor": "an executor"}, "executor"),
    ],
)
def test_invalid_arguments_are_refused_by_name(kwargs: dict[str, Any], named: str) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        if "executor" in kwargs:
            kwargs = {**kwargs, "executor": executor}
        with pytest.raises(ValueError, match=rf"^{named}\b"):
            make(Engine(), **kwargs)


def test_the_smallest_valid_limits_are_accepted() -> None:
    async def main() -> None:
        batcher = make(Engine(), max_batch_rows=1, max_queue_rows=1, max_queue_delay_us=0)
        np.testing.assert_array_equal(await batcher.submit(block(1, 1)), block(1, 1)[:, 0])
        await batcher.drain()

    run(main())


# --- dispatch -----------------------------------------------------------------------------------


@pytest.mark.parametrize("execution", MODES)
def test_a_request_to_an_idle_engine_is_computed_without_waiting_for_the_delay(
    execution: str,
) -> None:
    engine = Engine()
    recorder = Recorder()

    async def main() -> None:
        batcher = make(
            engine, max_queue_delay_us=60_000_000, execution=execution, observer=recorder,
            clock=FakeClock(),
        )  # fmt: skip
        result = await batcher.submit(block(1, 2))
        np.testing.assert_array_equal(result, block(1, 2)[:, 0])
        await batcher.drain()

    run(main(), timeout_s=5)  # a 60 s hold would time out here
    assert engine.sizes() == [2]
    assert [list(b.queue_wait_ns) for b in recorder.batches] == [[0]]


def test_requests_arriving_while_a_batch_runs_form_the_next_batch_in_thread_mode() -> None:
    engine = Engine(hold_first=True)

    async def main() -> None:
        batcher = make(engine, execution="thread")
        first = asyncio.create_task(batcher.submit(block(0, 1)))
        await engine.busy()
        later = [asyncio.create_task(batcher.submit(block(tag, 2))) for tag in (1, 2, 3)]
        await settle()
        assert batcher.queue_rows == 6
        engine.release.set()
        await first
        for tag, task in zip((1, 2, 3), later, strict=True):
            np.testing.assert_array_equal(await task, block(tag, 2)[:, 0])
        await batcher.drain()

    run(main())
    assert engine.sizes() == [1, 6]
    np.testing.assert_array_equal(engine.batches[1], np.vstack([block(t, 2) for t in (1, 2, 3)]))


def test_requests_arriving_while_an_inline_batch_runs_form_the_next_batch() -> None:
    engine = Engine()
    later: list[asyncio.Task[np.ndarray]] = []

    async def main() -> None:
        def predict(x: np.ndarray) -> np.ndarray:
            if not later:  # requests that arrive during the first engine call
                later.extend(asyncio.create_task(batcher.submit(block(t, 1))) for t in (1, 2))
            return engine.predict(x)

        batcher = make(predict, execution="inline")
        np.testing.assert_array_equal(await batcher.submit(block(0, 1)), block(0, 1)[:, 0])
        for tag, task in zip((1, 2), later, strict=True):
            np.testing.assert_array_equal(await task, block(tag, 1)[:, 0])
        await batcher.drain()

    run(main())
    assert engine.sizes() == [1, 2]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_caller_gets_exactly_predict_of_its_own_rows(data: st.DataObject) -> None:
    max_batch_rows = data.draw(st.integers(1, 8), label="max_batch_rows")
    waves = data.draw(
        st.lists(st.lists(st.integers(1, max_batch_rows), min_size=1, max_size=6), max_size=5),
        label="request sizes, in waves",
    )
    engine = Engine(width=data.draw(st.sampled_from([None, 2, 3]), label="width"))
    execution = data.draw(st.sampled_from(MODES), label="execution")
    sent: list[np.ndarray] = []

    async def main() -> list[np.ndarray]:
        batcher = make(
            engine, max_batch_rows=max_batch_rows, max_queue_rows=64 * 8, execution=execution
        )
        tasks = []
        for wave in waves:
            for n in wave:
                sent.append(block(len(sent), n))
                tasks.append(asyncio.create_task(batcher.submit(sent[-1])))
            await asyncio.sleep(0)
        results = await asyncio.gather(*tasks)
        await batcher.drain()
        return results

    results = run(main())
    for rows, result in zip(sent, results, strict=True):
        assert result.dtype == np.float32
        np.testing.assert_array_equal(result, engine.expect(rows))
    assert all(size <= max_batch_rows for size in engine.sizes())
    merged = np.vstack(engine.batches) if engine.batches else np.empty((0, F), np.float32)
    expected = np.vstack(sent) if sent else np.empty((0, F), np.float32)
    np.testing.assert_array_equal(merged, expected)  # oldest first, nothing split or lost


def test_inline_batches_leave_the_event_loop_a_turn_between_them() -> None:
    delivered: list[int] = []
    seen: list[int] = []
    engine = Engine()

    def predict(x: np.ndarray) -> np.ndarray:
        seen.append(len(delivered))
        return engine.predict(x)

    async def caller(batcher: MicroBatcher, tag: int) -> None:
        await batcher.submit(block(tag, 1))
        delivered.append(tag)

    async def main() -> None:
        batcher = make(predict, max_batch_rows=1, execution="inline")
        await asyncio.gather(*(caller(batcher, tag) for tag in range(3)))
        await batcher.drain()

    run(main())
    assert seen == [0, 1, 2]  # each caller had its result before the next batch ran


def test_batches_never_exceed_max_batch_rows_and_requests_are_never_split() -> None:
    engine = Engine()

    async def main() -> None:
        batcher = make(engine, max_batch_rows=4)
        sizes = [3, 2, 4, 1, 1, 2]
        results = await asyncio.gather(*(batcher.submit(block(t, n)) for t, n in enumerate(sizes)))
        assert [len(r) for r in results] == sizes
        await batcher.drain()

    run(main())
    assert engine.sizes() == [3, 2, 4, 4]


# --- admission ----------------------------------------------------------------------------------


def test_a_full_queue_raises_overloaded_at_once_while_accepted_work_completes() -> None:
    engine = Engine(hold_first=True)
    recorder = Recorder()

    async def main() -> None:
        batcher = make(
            engine, max_batch_rows=2, max_queue_rows=4, execution="thread", observer=recorder
        )
        first = asyncio.create_task(batcher.submit(block(0, 2)))
        await engine.busy()  # in the engine, no longer queued
        queued = [asyncio.create_task(batcher.submit(block(t, 2))) for t in (1, 2)]
        await settle()
        assert batcher.queue_rows == 4
        with pytest.raises(Overloaded, match="max_queue_rows=4"):
            await batcher.submit(block(9, 1), context="shed")  # the engine is still held
        engine.release.set()
        for tag, task in enumerate([first, *queued]):
            np.testing.assert_array_equal(await task, block(tag, 2)[:, 0])
        np.testing.assert_array_equal(await batcher.submit(block(3, 1)), block(3, 1)[:, 0])
        await batcher.drain()

    run(main())
    assert recorder.rejects == [("overloaded", "shed")]
    assert engine.sizes() == [2, 2, 2, 1]


# --- deadlines and cancellation -----------------------------------------------------------------


def test_a_request_past_its_deadline_fails_and_never_reaches_predict() -> None:
    clock = FakeClock(1_000_000)
    engine = Engine(hold_first=True)
    recorder = Recorder()

    async def main() -> None:
        batcher = make(engine, execution="thread", clock=clock, observer=recorder)
        first = asyncio.create_task(batcher.submit(block(0, 1)))
        await engine.busy()
        late = asyncio.create_task(batcher.submit(block(7, 2), clock.now + 500, "late"))
        on_time = asyncio.create_task(batcher.submit(block(8, 1), clock.now + 5_000, "on time"))
        await settle()
        clock.now += 500  # a deadline equal to the clock has passed
        engine.release.set()
        await first
        with pytest.raises(DeadlineExpired, match=r"deadline passed 0 us before compute"):
            await late
        np.testing.assert_array_equal(await on_time, block(8, 1)[:, 0])
        await batcher.drain()

    run(main())
    assert engine.sizes() == [1, 1]
    np.testing.assert_array_equal(engine.batches[1], block(8, 1))
    assert recorder.rejects == [("deadline_expired", "late")]


@pytest.mark.parametrize("execution", MODES)
def test_a_deadline_already_past_at_submit_fails_in_either_mode(execution: str) -> None:
    clock = FakeClock()
    engine = Engine()

    async def main() -> None:
        batcher = make(engine, execution=execution, clock=clock)
        with pytest.raises(DeadlineExpired):
            await batcher.submit(block(1, 1), deadline_ns=clock.now - 1)
        await batcher.drain()

    run(main())
    assert engine.batches == []


def test_a_cancelled_request_is_skipped_and_takes_no_rows() -> None:
    engine = Engine(hold_first=True)
    recorder = Recorder()

    async def main() -> None:
        batcher = make(engine, max_batch_rows=2, execution="thread", observer=recorder)
        first = asyncio.create_task(batcher.submit(block(0, 1)))
        await engine.busy()
        gone = asyncio.create_task(batcher.submit(block(5, 2), context="gone"))
        after = [asyncio.create_task(batcher.submit(block(t, 1))) for t in (1, 2)]
        await settle()
        gone.cancel()
        engine.release.set()
        await first
        for tag, task in zip((1, 2), after, strict=True):
            np.testing.assert_array_equal(await task, block(tag, 1)[:, 0])
        assert gone.cancelled()
        assert batcher.queue_rows == 0
        await batcher.drain()

    run(main())
    assert engine.sizes() == [1, 2]  # had the 2 cancelled rows counted, 1 and 2 would split
    assert recorder.rejects == [("cancelled", "gone")]


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("execution", MODES)
def test_a_failing_predict_fails_only_its_own_batch(execution: str) -> None:
    engine = Engine(fail_calls=(0,))
    recorder = Recorder()

    async def main() -> None:
        batcher = make(engine, execution=execution, observer=recorder)
        outcomes = await asyncio.gather(
            batcher.submit(block(1, 1)), batcher.submit(block(2, 2)), return_exceptions=True
        )
        for outcome in outcomes:
            assert isinstance(outcome, ValueError)
            assert str(outcome) == "engine fault in call 0"
        np.testing.assert_array_equal(await batcher.submit(block(3, 1)), block(3, 1)[:, 0])
        await batcher.drain()

    run(main())
    assert engine.sizes() == [3, 1]
    assert [type(b.error) for b in recorder.batches] == [ValueError, type(None)]


def test_requests_queued_behind_a_failing_batch_still_succeed() -> None:
    engine = Engine(hold_first=True, fail_calls=(0,))

    async def main() -> None:
        batcher = make(engine, execution="thread")
        doomed = asyncio.create_task(batcher.submit(block(0, 1)))
        await engine.busy()
        queued = asyncio.create_task(batcher.submit(block(1, 1)))
        await settle()
        engine.release.set()
        with pytest.raises(ValueError, match="engine fault"):
            await doomed
        np.testing.assert_array_equal(await queued, block(1, 1)[:, 0])
        await batcher.drain()

    run(main())


def test_a_dispatcher_that_dies_fails_every_waiting_request_and_refuses_new_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Crash(BaseException):
        pass

    def predict(x: np.ndarray) -> np.ndarray:
        raise Crash

    async def main() -> None:
        batcher = make(predict, max_batch_rows=1)
        outcomes = await asyncio.gather(
            batcher.submit(block(1, 1)), batcher.submit(block(2, 1)), return_exceptions=True
        )
        assert [type(o) for o in outcomes] == [Unavailable, Unavailable]  # in batch, queued
        with pytest.raises(Unavailable, match="stopped"):
            await batcher.submit(block(3, 1))
        with pytest.raises(Crash):
            await batcher.drain()

    with caplog.at_level(logging.ERROR, logger="forestgate.server.batcher"):
        run(main())
    assert ["dispatcher failed" in r.getMessage() for r in caplog.records] == [True]


# --- max_queue_delay_us -------------------------------------------------------------------------


def test_a_backlog_waits_for_more_rows_and_flushes_when_a_batch_is_full() -> None:
    engine = Engine(hold_first=True)

    async def main() -> None:
        batcher = make(engine, max_batch_rows=4, max_queue_delay_us=60_000_000, execution="thread")
        first = asyncio.create_task(batcher.submit(block(0, 1)))
        await engine.busy()
        backlog = [asyncio.create_task(batcher.submit(block(t, 1))) for t in (1, 2)]
        await settle()
        engine.release.set()
        await first
        await asyncio.sleep(0.05)
        await settle()
        assert not any(task.done() for task in backlog)  # held: 2 of 4 rows, oldest not due
        assert engine.sizes() == [1]
        filler = asyncio.create_task(batcher.submit(block(3, 2)))
        await asyncio.gather(*backlog, filler)
        await batcher.drain()

    run(main())
    assert engine.sizes() == [1, 4]


def test_a_backlog_is_flushed_when_its_oldest_request_reaches_the_delay() -> None:
    engine = Engine(hold_first=True)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        batcher = make(engine, max_queue_delay_us=30_000, execution="thread", clock=FakeClock())
        first = asyncio.create_task(batcher.submit(block(0, 1)))
        await engine.busy()
        held = asyncio.create_task(batcher.submit(block(1, 1)))
        await settle()
        engine.release.set()
        await first
        released = loop.time()
        await held
        waited = loop.time() - released
        await batcher.drain()
        return waited

    waited = run(main())
    assert waited >= 0.025  # the loop's timer, ~1 ms granularity
    assert engine.sizes() == [1, 1]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_sub_millisecond_delay_still_holds_a_backlog_on_either_loop(loop: str) -> None:
    engine = Engine(hold_first=True)

    async def main() -> float:
        batcher = make(engine, max_queue_delay_us=300, execution="thread", clock=FakeClock())
        first = asyncio.create_task(batcher.submit(block(0, 1)))
        await engine.busy()
        held = asyncio.create_task(batcher.submit(block(1, 1)))
        await settle()
        engine.release.set()
        await first
        released = time.perf_counter()
        await held
        waited = time.perf_counter() - released
        await batcher.drain()
        return waited

    runner = uvloop.run if loop == "uvloop" else asyncio.run
    waited = runner(asyncio.wait_for(main(), 10))
    assert waited >= 300e-6  # uvloop would round a 300 us timer down to none
    assert engine.sizes() == [1, 1]


def test_the_delay_is_measured_from_the_oldest_request_on_the_injected_clock() -> None:
    clock = FakeClock()
    engine = Engine(hold_first=True)

    async def main() -> None:
        batcher = make(engine, max_queue_delay_us=60_000_000, execution="thread", clock=clock)
        first = asyncio.create_task(batcher.submit(block(0, 1)))
        await engine.busy()
        oldest = asyncio.create_task(batcher.submit(block(1, 1)))
        await settle()
        clock.now += 60_000_000_000  # the oldest is now exactly max_queue_delay_us old
        newest = asyncio.create_task(batcher.submit(block(2, 1)))
        await settle()
        engine.release.set()
        await asyncio.gather(first, oldest, newest)  # not another 60 s for the newest
        await batcher.drain()

    run(main(), timeout_s=5)
    assert engine.sizes() == [1, 2]


# --- outputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("execution", MODES)
def test_multi_output_rows_are_split_per_request(execution: str) -> None:
    engine = Engine(width=3)

    async def main() -> list[np.ndarray]:
        batcher = make(engine, execution=execution)
        results = await asyncio.gather(*(batcher.submit(block(t, t)) for t in (1, 2, 3)))
        await batcher.drain()
        return results

    results = run(main())
    assert engine.sizes() == [6]
    for tag, result in zip((1, 2, 3), results, strict=True):
        assert result.shape == (tag, 3)
        np.testing.assert_array_equal(result, block(tag, tag)[:, :3])


# --- lifecycle ----------------------------------------------------------------------------------


def test_drain_finishes_in_flight_and_queued_work_then_refuses_new_work() -> None:
    engine = Engine(hold_first=True)
    recorder = Recorder()

    async def main() -> None:
        batcher = make(engine, execution="thread", observer=recorder, name="drained")
        in_flight = asyncio.create_task(batcher.submit(block(0, 1)))
        await engine.busy()
        queued = asyncio.create_task(batcher.submit(block(1, 2)))
        await settle()
        draining = asyncio.create_task(batcher.drain())
        await settle()
        assert not draining.done()
        with pytest.raises(Unavailable, match="draining"):
            await batcher.submit(block(2, 1), context="too late")
        engine.release.set()
        await draining
        np.testing.assert_array_equal(in_flight.result(), block(0, 1)[:, 0])
        np.testing.assert_array_equal(queued.result(), block(1, 2)[:, 0])
        with pytest.raises(Unavailable):
            await batcher.submit(block(3, 1))
        await batcher.drain()  # idempotent

    run(main())
    assert engine.sizes() == [1, 2]
    assert [reason for reason, _ in recorder.rejects] == ["unavailable", "unavailable"]
    assert not any(t.name.startswith("batcher-drained") for t in threading.enumerate())


def test_drain_does_not_wait_out_the_delay() -> None:
    engine = Engine(hold_first=True)

    async def main() -> None:
        batcher = make(engine, max_queue_delay_us=60_000_000, execution="thread")
        first = asyncio.create_task(batcher.submit(block(0, 1)))
        await engine.busy()
        held = asyncio.create_task(batcher.submit(block(1, 1)))
        await settle()
        engine.release.set()
        await first
        await settle()
        assert not held.done()
        await batcher.drain()
        np.testing.assert_array_equal(held.result(), block(1, 1)[:, 0])

    run(main(), timeout_s=5)


def test_close_fails_queued_requests_and_lets_the_running_batch_finish() -> None:
    engine = Engine(hold_first=True)

    async def main() -> None:
        batcher = make(engine, execution="thread")
        in_flight = asyncio.create_task(batcher.submit(block(0, 1)))
        await engine.busy()
        queued = asyncio.create_task(batcher.submit(block(1, 1)))
        await settle()
        closing = asyncio.create_task(batcher.close())
        with pytest.raises(Unavailable, match="closed"):
            await queued
        engine.release.set()
        await closing
        np.testing.assert_array_equal(in_flight.result(), block(0, 1)[:, 0])
        with pytest.raises(Unavailable):
            await batcher.submit(block(2, 1))

    run(main())
    assert engine.sizes() == [1]


def test_a_new_version_takes_traffic_while_the_old_one_drains() -> None:
    old_engine, new_engine = Engine(hold_first=True), Engine()

    async def main() -> None:
        old = make(old_engine, execution="thread", name="fraud/1")
        new = make(new_engine, execution="thread", name="fraud/2")
        current = old
        in_flight = asyncio.create_task(current.submit(block(0, 1)))
        await old_engine.busy()
        current = new  # the swap
        draining = asyncio.create_task(old.drain())
        np.testing.assert_array_equal(await current.submit(block(1, 1)), block(1, 1)[:, 0])
        assert not draining.done()  # the old version is still finishing its batch
        old_engine.release.set()
        await draining
        np.testing.assert_array_equal(in_flight.result(), block(0, 1)[:, 0])
        await new.drain()

    run(main())
    assert old_engine.sizes() == [1]
    assert new_engine.sizes() == [1]


# --- execution ----------------------------------------------------------------------------------


def test_inline_mode_calls_predict_on_the_event_loop_thread() -> None:
    engine = Engine()

    async def main() -> None:
        batcher = make(engine, execution="inline")
        await batcher.submit(block(1, 1))
        await batcher.drain()

    run(main())
    assert engine.threads == [threading.current_thread().name]


def test_thread_mode_uses_an_injected_executor_and_leaves_it_running() -> None:
    engine = Engine()
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="engine")

    async def main() -> None:
        batcher = make(engine, execution="thread", executor=executor)
        await batcher.submit(block(1, 1))
        await batcher.drain()

    run(main())
    assert engine.threads[0].startswith("engine")
    assert executor.submit(lambda: 42).result() == 42  # drain did not shut it down
    executor.shutdown()


def test_thread_mode_without_an_executor_uses_one_thread_of_its_own() -> None:
    engine = Engine()

    async def main() -> None:
        batcher = make(engine, execution="thread", name="fraud/3")
        await asyncio.gather(*(batcher.submit(block(t, 1)) for t in range(3)))
        await batcher.drain()
        assert not any(t.name.startswith("batcher-fraud/3") for t in threading.enumerate())

    run(main())
    assert {name.split("_")[0] for name in engine.threads} == {"batcher-fraud/3"}


# --- statistics ---------------------------------------------------------------------------------


def test_the_observer_sees_rows_requests_queue_wait_compute_time_and_contexts() -> None:
    clock = FakeClock(1_000)
    engine = Engine(hold_first=True, clock=clock, compute_ns=300)
    recorder = Recorder()

    async def main() -> None:
        batcher = make(engine, execution="thread", clock=clock, observer=recorder)
        first = asyncio.create_task(batcher.submit(block(0, 1), context="a"))
        await engine.busy()
        clock.now = 2_000
        b = asyncio.create_task(batcher.submit(block(1, 2), context="b"))
        await settle()
        clock.now = 2_250
        c = asyncio.create_task(batcher.submit(block(2, 1), context="c"))
        await settle()
        clock.now = 2_400
        engine.release.set()
        await asyncio.gather(first, b, c)
        await batcher.drain()

    run(main())
    assert recorder.batches == [
        BatchStats(
            rows=1, requests=1, queue_wait_ns=[0], compute_ns=1_700, formed_ns=1_000,
            contexts=["a"], error=None,
        ),
        BatchStats(
            rows=3, requests=2, queue_wait_ns=[700, 450], compute_ns=300, formed_ns=2_700,
            contexts=["b", "c"], error=None,
        ),
    ]  # fmt: skip
    assert recorder.rejects == []


def test_a_failing_observer_never_fails_requests_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def on_batch(self, batch: BatchStats) -> None:
            raise RuntimeError("metrics backend down")

        def on_reject(self, reason: str, context: object) -> None:
            raise RuntimeError("metrics backend down")

    async def main() -> None:
        batcher = make(Engine(), observer=Broken(), max_batch_rows=1, max_queue_rows=1)
        for tag in range(3):
            np.testing.assert_array_equal(await batcher.submit(block(tag, 1)), block(tag, 1)[:, 0])
        with pytest.raises(Overloaded):  # the observer's error does not replace this one
            await asyncio.gather(batcher.submit(block(8, 1)), batcher.submit(block(9, 1)))
        await batcher.drain()

    with caplog.at_level(logging.ERROR, logger="forestgate.server.batcher"):
        run(main())
    assert len(caplog.records) == 1
    assert "observer failed" in caplog.records[0].getMessage()
