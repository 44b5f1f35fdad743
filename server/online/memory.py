"""The in-process online feature store: payments.online.FeatureState behind the async interface,
saved to a snapshot file on close and loaded from it on open."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from forestgate.payments.codes import ResponseCodes
from forestgate.payments.featurespec import DAY_MS, Answer, Request
from forestgate.payments.online import FeatureState
from forestgate.payments.routetable import RouteTable
from forestgate.payments.snapshot import restore, save
from forestgate.payments.vectors import F32


class MemoryFeatures:
    """One process's online features. Every method runs to completion without awaiting, so on
    the server's single event loop each call is atomic (no lock needed); the state is not shared
    between processes (several replicas share counts through the Redis store)."""

    def __init__(self, state: FeatureState, *, snapshot_path: Path | None = None) -> None:
        self.state = state
        self._snapshot_path = snapshot_path

    @classmethod
    def open(
        cls,
        *,
        routes: RouteTable,
        codes: ResponseCodes,
        utc_offset_s: Mapping[str, int],
        snapshot_path: Path | None = None,
        lateness_ms: int = DAY_MS,
    ) -> MemoryFeatures:
        """A store resumed from ``snapshot_path`` when that file exists (its own lateness then
        holds), else empty; ``close`` saves to the same path."""
        if snapshot_path is not None and snapshot_path.exists():
            state = restore(
                snapshot_path.read_bytes(), routes=routes, codes=codes, utc_offset_s=utc_offset_s
            )
        else:
            state = FeatureState(
                routes=routes, codes=codes, utc_offset_s=utc_offset_s, lateness_ms=lateness_ms
            )
        return cls(state, snapshot_path=snapshot_path)

    async def approval_rows(self, request: Request, route_ids: Sequence[str]) -> F32:
        return self.state.approval_rows(request, route_ids)

    async def retry_rows(self, decline: Request, candidates: Sequence[tuple[int, str]]) -> F32:
        return self.state.retry_rows(decline, candidates)

    async def observe(self, request: Request, answer: Answer) -> None:
        self.state.observe(request, answer)

    async def close(self) -> None:
        # Blocks the loop while it writes, which is acceptable once, at shutdown.
        if self._snapshot_path is not None:
            save(self.state, self._snapshot_path)


__all__ = ["MemoryFeatures"]
