"""The online feature store's interface: what the decision API awaits per Score and
ReportOutcome, whichever backend holds the counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from forestgate.payments.featurespec import Answer, Request
from forestgate.payments.vectors import F32


class OnlineFeatures(Protocol):
    """Feature rows from the attempts observed so far (payments.online.FeatureState's semantics:
    any arrival order, exact window counts, expiry by event time)."""

    async def approval_rows(self, request: Request, route_ids: Sequence[str]) -> F32:
        """[len(route_ids), len(APPROVAL_FEATURES)]: ``request`` scored on each route."""
        ...

    async def retry_rows(self, decline: Request, candidates: Sequence[tuple[int, str]]) -> F32:
        """[len(candidates), len(RETRY_FEATURES)]: retrying the observed decline ``decline``
        after each (delay_s, route_id); InvalidInput if it was not observed or expired."""
        ...

    async def observe(self, request: Request, answer: Answer) -> None:
        """Count one attempt and its answer (in any order relative to other attempts)."""
        ...

    async def close(self) -> None:
        """Release what the store holds (connections; the memory store saves its snapshot)."""
        ...
