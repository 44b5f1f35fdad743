"""Engines the tests hold and release: a gate between the batcher and a real compiled model."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from forestgate.engine.model import CompiledModel


class Gate:
    """Wraps models' engines (`wrap` is an engine wrapper for start_server and the batcher
    factory): while closed, a batch stays in the engine until the test opens the gate, so what
    the server does with calls that arrive meanwhile does not depend on timing. Every batch
    the engine scores is recorded."""

    def __init__(self, *, closed: bool = True) -> None:
        self.opened = threading.Event()
        if not closed:
            self.opened.set()
        self.entered = threading.Event()
        self.rows_in_engine = 0
        self.batches: list[np.ndarray] = []

    def wrap(self, model: CompiledModel) -> Gated:
        return Gated(self, model)

    async def busy(self) -> None:
        """Wait until a batch is inside the engine, held at the gate."""
        assert await asyncio.to_thread(self.entered.wait, 20), "no batch reached the engine"

    def sizes(self) -> list[int]:
        return [len(batch) for batch in self.batches]


class Gated:
    """One model's engine behind the gate (the batcher's Engine protocol)."""

    def __init__(self, gate: Gate, model: CompiledModel) -> None:
        self.gate = gate
        self.model = model
        self.num_features = model.num_features
        self.output_width = model.output_width

    def score(self, rows: np.ndarray, out: np.ndarray) -> None:
        self.gate.rows_in_engine += rows.shape[0]
        self.gate.batches.append(rows.copy())
        self.gate.entered.set()
        if not self.gate.opened.wait(20):
            raise TimeoutError("the test never opened the gate")
        self.model.score(rows, out)
