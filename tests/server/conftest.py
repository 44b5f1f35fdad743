"""Fixtures for server tests: small bundles compiled once per run, and a live server on port 0."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import uvloop

if TYPE_CHECKING:
    from tests.otlp import TraceReceiver
    from tests.server.processes import ServeProcess

NUM_FEATURES = 8


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, NUM_FEATURES)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    x[rng.random(x.shape) < 0.05] = np.nan
    return x, y


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fraud/1 and fraud/2 (XGBoost binary, different trees), classes/1 (LightGBM 3-class)."""
    import lightgbm
    import xgboost

    from forestgate.compiler.pipeline import compile_model

    root = tmp_path_factory.mktemp("repository")
    x, y = _rows(2000, seed=1)
    for version, trees in (("1", 5), ("2", 12)):
        model = xgboost.XGBClassifier(n_estimators=trees, max_depth=3, nthread=1).fit(x, y)
        compile_model(model, name="fraud", version=version, repository=root)
    y3 = (np.nan_to_num(x[:, 2]) > 0.5).astype(int) + (np.nan_to_num(x[:, 3]) > 0).astype(int)
    lgb = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=7, verbose=-1, n_jobs=1).fit(x, y3)
    compile_model(lgb, name="classes", version="1", repository=root)
    return root


@pytest.fixture(scope="session")
def calibrated_repository(tmp_path_factory: pytest.TempPathFactory, model_repository: Path) -> Path:
    """approval/1 (XGBoost binary with an isotonic calibration map, reference distributions and
    training metrics) beside a copy of fraud/2, which has no map."""
    import shutil

    import xgboost
    from sklearn.isotonic import IsotonicRegression

    from forestgate.compiler.calibration import from_sklearn
    from forestgate.compiler.pipeline import compile_model
    from forestgate.engine.reference import Reference

    root = tmp_path_factory.mktemp("calibrated")
    shutil.copytree(model_repository / "fraud" / "2", root / "fraud" / "2")
    x, y = _rows(3000, seed=2)
    train, held = slice(0, 2000), slice(2000, None)
    model = xgboost.XGBClassifier(n_estimators=6, max_depth=3, nthread=1).fit(x[train], y[train])
    p = model.predict_proba(x[held])[:, 1].astype(np.float64)
    isotonic = IsotonicRegression(out_of_bounds="clip").fit(p, y[held])
    compile_model(
        model, name="approval", version="1", repository=root,
        calibration=from_sklearn(isotonic),
        reference=Reference.fit(x[held], p, [f"f{i}" for i in range(NUM_FEATURES)]),
        training_metrics={"auc": 0.9, "rows": 2000},
    )  # fmt: skip
    return root


@pytest.fixture
def receiver() -> Iterator[TraceReceiver]:
    """A real OTLP trace receiver (tests/otlp.py); start it with start_grpc or start_http."""
    from tests.otlp import TraceReceiver

    receiver = TraceReceiver()
    yield receiver
    receiver.stop()


@dataclass
class LiveServer:
    address: str
    port: int
    running: object
    loop: asyncio.AbstractEventLoop


@pytest.fixture
def live_server(model_repository: Path) -> Iterator[LiveServer]:
    """A real grpc.aio server on 127.0.0.1:0, on its own uvloop in a thread."""
    yield from _serve(model_repository)


def _serve(
    repository: Path, wrap_engine: object = None, **overrides: object
) -> Iterator[LiveServer]:
    from forestgate.server.app import start_server
    from forestgate.server.settings import Settings

    if wrap_engine is not None:
        # A held engine must never be called on the event loop, which the test needs.
        overrides.setdefault("idle_inline_rows", 0)
    settings = replace(Settings(), model_repository=repository, port=0, **overrides)  # type: ignore[arg-type]
    ready = threading.Event()
    box: dict[str, object] = {}

    async def main() -> None:
        running = await start_server(settings, wrap_engine=wrap_engine)  # type: ignore[arg-type]
        box["running"] = running
        box["loop"] = asyncio.get_running_loop()
        box["stop"] = stop = asyncio.Event()
        ready.set()
        await stop.wait()
        await running.drain_and_stop(1.0)

    def run() -> None:
        try:
            uvloop.run(main())
        except BaseException as exc:  # surfaced to the test below
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "server did not start"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    running = box["running"]
    loop = box["loop"]
    server = LiveServer(f"127.0.0.1:{running.port}", running.port, running, loop)  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
        thread.join(30)


@pytest.fixture
def serve_with():
    """Start a server with settings overrides, `with serve_with(repo, max_queue_rows=8) as s`,
    and optionally an engine wrapper (`wrap_engine=`), to hold and release the engine."""
    from contextlib import contextmanager

    @contextmanager
    def start(
        repository: Path, wrap_engine: object = None, **overrides: object
    ) -> Iterator[LiveServer]:
        gen = _serve(repository, wrap_engine, **overrides)
        try:
            yield next(gen)
        finally:
            gen.close()

    return start


def rows(n: int, seed: int = 0) -> np.ndarray:
    return _rows(n, seed)[0]


@pytest.fixture
def serving(model_repository: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start `forestgate serve` subprocesses, killed at the end if still running."""
    from tests.server.processes import ServeProcess

    started: list[ServeProcess] = []

    def start(
        *args: str, repository: Path = model_repository, env: dict[str, str] | None = None
    ) -> ServeProcess:
        process = ServeProcess(repository, *args, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(10)
        process.close()
