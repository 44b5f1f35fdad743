"""The scoring core without a network: real bundles and batchers, an engine the test holds.

Nothing here is timed. A batch "formed while the engine was busy" is shown by holding the first
batch at a gate, sending more requests, and reading the batches the engine then received.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from forestgate.engine.model import CompiledModel
from forestgate.errors import DeadlineExpired, InvalidInput, NotFound, Unavailable
from forestgate.server.app import batcher_factory
from forestgate.server.metrics import ServerMetrics
from forestgate.server.repository import ModelRepository
from forestgate.server.scoring import (
    OUTPUT_NAME,
    PROBABILITY_NAME,
    InferRequest,
    InferResult,
    Readiness,
    ScoringCore,
    Tensor,
)
from forestgate.server.settings import Settings
from tests.server.conftest import NUM_FEATURES, rows
from tests.server.engines import Gate


def request(x: Any, model: str = "fraud", **fields: Any) -> InferRequest:
    datatype = fields.pop("datatype", "FP32")
    return InferRequest(model=model, inputs=(Tensor("input__0", datatype, x),), **fields)


async def open_core(repository: Path, gate: Gate, **settings: Any) -> ScoringCore:
    settings.setdefault("execution", "thread")
    settings.setdefault("idle_inline_rows", 0)  # the gate must hold the engine thread, not the loop
    config = Settings(model_repository=repository, **settings)
    models = ModelRepository(repository, batcher_factory(config, ServerMetrics(), gate.wrap))
    await models.load_all()
    readiness = Readiness()
    readiness.ready = True
    return ScoringCore(models, readiness, max_request_rows=config.max_request_rows)


def run(repository: Path, scenario: Any, gate: Gate | None = None, **settings: Any) -> Any:
    """Open a core over `repository`, run `scenario(core, gate)`, drain, return its result."""

    gate = gate or Gate(closed=False)

    async def main() -> Any:
        core = await open_core(repository, gate, **settings)
        try:
            return await asyncio.wait_for(scenario(core, gate), 30)
        finally:
            gate.opened.set()
            await core.repository.drain_all()

    return asyncio.run(main())


def scores(result: InferResult, name: str = OUTPUT_NAME) -> np.ndarray:
    return next(t.data for t in result.outputs if t.name == name)


def test_requests_sent_while_the_engine_is_held_share_the_next_batch(
    model_repository: Path,
) -> None:
    gate = Gate()
    model = CompiledModel.open(model_repository / "fraud" / "2")
    blocks = [rows(n, seed=i) for i, n in enumerate((1, 2, 3, 1))]

    async def scenario(core: ScoringCore, gate: Gate) -> list[InferResult]:
        first = asyncio.create_task(core.infer(request(blocks[0])))
        await gate.busy()
        later = [asyncio.create_task(core.infer(request(x))) for x in blocks[1:]]
        while core.repository.get("fraud").batcher.queue_rows < 6:  # type: ignore[attr-defined]
            await asyncio.sleep(0)
        gate.opened.set()
        return await asyncio.gather(first, *later)

    results = run(model_repository, scenario, gate)
    assert gate.sizes() == [1, 6]  # the three later requests formed one batch, oldest first
    np.testing.assert_array_equal(gate.batches[1], np.vstack(blocks[1:]))
    for x, result in zip(blocks, results, strict=True):
        np.testing.assert_array_equal(scores(result), model.predict(x))
        assert (result.model, result.version) == ("fraud", "2")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (request(rows(2).astype(np.float64), datatype="FP64"), "datatype 'FP64', expected 'FP32'"),
        (request(rows(2)[:, :3]), r"shape [2, 3], expected [n, 8]"),
        (request(rows(2).reshape(-1)), r"shape [16], expected [n, 8]"),
        (request(np.empty((0, NUM_FEATURES), np.float32)), "has no rows"),
        (request(rows(300)), "300 rows, more than the limit of 299 per request (max_request"),
        (
            InferRequest("fraud", (Tensor("a", "FP32", rows(1)), Tensor("b", "FP32", rows(1)))),
            "inputs: expected exactly 1 input tensor",
        ),
        (request(rows(1), outputs=("probabilities",)), "unknown output 'probabilities'"),
    ],
    ids=["datatype", "width", "one-dim", "no-rows", "too-many", "two-inputs", "output"],
)
def test_a_bad_request_is_refused_naming_the_field_and_never_reaches_the_engine(
    model_repository: Path, bad: InferRequest, message: str
) -> None:
    async def scenario(core: ScoringCore, gate: Gate) -> None:
        with pytest.raises(InvalidInput, match=re.escape(message)):
            await core.infer(bad)

    gate = Gate(closed=False)
    run(model_repository, scenario, gate, max_request_rows=299)
    assert gate.batches == []


def test_unknown_models_and_versions_are_not_found(model_repository: Path) -> None:
    async def scenario(core: ScoringCore, gate: Gate) -> None:
        with pytest.raises(NotFound, match="model 'nope' is not loaded"):
            await core.infer(request(rows(1), model="nope"))
        with pytest.raises(NotFound, match="has no version '7'; loaded: 1, 2"):
            await core.infer(request(rows(1), version="7"))

    run(model_repository, scenario)


def test_a_pinned_version_is_scored_by_that_version(model_repository: Path) -> None:
    old = CompiledModel.open(model_repository / "fraud" / "1")
    x = rows(5)

    async def scenario(core: ScoringCore, gate: Gate) -> InferResult:
        return await core.infer(request(x, version="1"))

    result = run(model_repository, scenario)
    assert result.version == "1"
    np.testing.assert_array_equal(scores(result), old.predict(x))


def test_not_ready_and_draining_are_unavailable(model_repository: Path) -> None:
    async def scenario(core: ScoringCore, gate: Gate) -> None:
        core.readiness.ready = False
        with pytest.raises(Unavailable, match="starting"):
            await core.infer(request(rows(1)))
        core.readiness.ready = True
        core.readiness.draining = True
        with pytest.raises(Unavailable, match="draining"):
            await core.infer(request(rows(1)))

    run(model_repository, scenario)


def test_a_timeout_that_passes_in_the_queue_is_deadline_expired(model_repository: Path) -> None:
    gate = Gate()

    async def scenario(core: ScoringCore, gate: Gate) -> None:
        first = asyncio.create_task(core.infer(request(rows(1))))
        await gate.busy()
        late = asyncio.create_task(core.infer(request(rows(1), timeout_us=1)))
        while core.repository.get("fraud").batcher.queue_rows < 1:  # type: ignore[attr-defined]
            await asyncio.sleep(0)
        gate.opened.set()
        await first
        with pytest.raises(DeadlineExpired, match="deadline passed"):
            await late

    run(model_repository, scenario, gate)
    assert gate.sizes() == [1]


def outputs_of(repository: Path, asked: tuple[str, ...]) -> InferResult:
    async def scenario(core: ScoringCore, gate: Gate) -> InferResult:
        return await core.infer(request(rows(4), model="approval", outputs=asked))

    result: InferResult = run(repository, scenario)
    return result


def test_a_calibrated_model_returns_both_outputs_unless_asked_for_some(
    calibrated_repository: Path,
) -> None:
    model = CompiledModel.open(calibrated_repository / "approval" / "1")
    raw = model.predict(rows(4))
    both = outputs_of(calibrated_repository, ())
    assert [t.name for t in both.outputs] == [OUTPUT_NAME, PROBABILITY_NAME]
    np.testing.assert_array_equal(scores(both), raw)
    np.testing.assert_array_equal(scores(both, PROBABILITY_NAME), model.calibrate(raw))
    swapped = outputs_of(calibrated_repository, (PROBABILITY_NAME, OUTPUT_NAME, PROBABILITY_NAME))
    assert [t.name for t in swapped.outputs] == [PROBABILITY_NAME, OUTPUT_NAME]
    assert [t.name for t in outputs_of(calibrated_repository, (OUTPUT_NAME,)).outputs] == [
        OUTPUT_NAME
    ]


def test_a_model_without_a_map_has_no_probability_output(model_repository: Path) -> None:
    async def scenario(core: ScoringCore, gate: Gate) -> None:
        result = await core.infer(request(rows(2)))
        assert [t.name for t in result.outputs] == [OUTPUT_NAME]
        with pytest.raises(InvalidInput, match="unknown output 'probability', expected 'output"):
            await core.infer(request(rows(2), outputs=(PROBABILITY_NAME,)))

    run(model_repository, scenario)


def test_model_info_describes_tensors_and_provenance(calibrated_repository: Path) -> None:
    async def scenario(core: ScoringCore, gate: Gate) -> Any:
        return core.model_info("approval")

    info = run(calibrated_repository, scenario)
    assert info.versions == ("1",)
    assert [(s.name, s.shape) for s in info.inputs] == [("input__0", (-1, NUM_FEATURES))]
    assert [s.name for s in info.outputs] == [OUTPUT_NAME, PROBABILITY_NAME]
    assert info.parameters["task"] == "binary"
    assert info.parameters["framework"].startswith("xgboost ")
