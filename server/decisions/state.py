"""The online state decisions read and update: the feature state (velocity counters and trailing
approval rates), the guardrail's attempt history per card and merchant, and the attempts Score
has seen, by authorization id, so ReportOutcome and later retry consultations can find them.

Every method is synchronous and never awaits in the middle of an update, so on the server's one
event loop each is atomic. Memory is bounded: the attempts table keeps the newest
``max_attempts`` ids, and histories drop attempts older than the longest guardrail window.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from forestgate.errors import InvalidInput, Unavailable
from forestgate.payments.features import Answer, FeatureState, Request
from forestgate.payments.guardrail import Attempt, History

F32 = npt.NDArray[np.float32]
# The longest window any guardrail counter looks back (Visa's and Mastercard's 30 days), with a
# day to spare for clock skew between replicas.
HISTORY_WINDOW = dt.timedelta(days=31)


@dataclass(slots=True)
class SeenAttempt:
    """An attempt Score decided: its features request, and its guardrail record once answered."""

    request: Request
    attempt: Attempt  # approved/response code are placeholders until the outcome arrives
    reported: bool = False


class DecisionState:
    def __init__(
        self, make_features: Callable[[Mapping[str, int]], FeatureState], *, max_attempts: int
    ) -> None:
        # The feature state needs each country's clock, which comes with the first approval
        # model loaded: it is built then.
        self._make_features = make_features
        self._features: FeatureState | None = None
        self.max_attempts = max_attempts
        self._seen: OrderedDict[str, SeenAttempt] = OrderedDict()
        self._histories: dict[tuple[str, str], list[Attempt]] = {}
        self._next_id = 0
        self.late_outcomes = 0  # outcomes older than what the feature state has seen

    def start(self, utc_offset_s: Mapping[str, int]) -> None:
        if self._features is None:
            self._features = self._make_features(utc_offset_s)

    @property
    def features(self) -> FeatureState:
        if self._features is None:
            raise Unavailable("the online feature state starts with the first approval model")
        return self._features

    def next_attempt_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def seen(self, authorization_id: str) -> SeenAttempt | None:
        return self._seen.get(authorization_id)

    def remember(self, authorization_id: str, seen: SeenAttempt) -> None:
        """Keep a decided attempt until its outcome (and a later consultation) needs it."""
        self._seen[authorization_id] = seen
        self._seen.move_to_end(authorization_id)
        while len(self._seen) > self.max_attempts:
            self._seen.popitem(last=False)

    def report(self, authorization_id: str, answer: Answer, route_id: str, at: dt.datetime) -> bool:
        """Record the outcome of a remembered attempt; False if it was already reported."""
        seen = self._seen.get(authorization_id)
        if seen is None:
            raise KeyError(authorization_id)
        if seen.reported:
            return False
        seen.reported = True
        request = dataclasses.replace(seen.request, route_id=route_id)
        attempt = dataclasses.replace(
            seen.attempt,
            route=route_id,
            approved=answer.approved,
            response_code=answer.response_code,
            merchant_advice_code=answer.merchant_advice_code,
        )
        seen.request, seen.attempt = request, attempt
        self._observe(request, answer)
        self._record(attempt, at)
        return True

    def history(self, card_key: str, merchant_id: str) -> History:
        return History(
            card_key, merchant_id, tuple(self._histories.get((card_key, merchant_id), ()))
        )

    def approval_rows(self, request: Request, route_ids: tuple[str, ...]) -> F32:
        return np.stack([self.features.approval(request, route) for route in route_ids])

    def retry_rows(self, decline: Request, candidates: list[tuple[int, str]]) -> F32:
        return np.stack(
            [self.features.retry(decline, delay_s=d, route_id=r) for d, r in candidates]
        )

    def _observe(self, request: Request, answer: Answer) -> None:
        try:
            self.features.observe(request, answer)
        except InvalidInput:
            # The reference state takes attempts in time order only; a late outcome still
            # counts for the guardrail below, but not for the velocity features.
            self.late_outcomes += 1

    def _record(self, attempt: Attempt, now: dt.datetime) -> None:
        key = (attempt.card_key, attempt.merchant_id)
        kept = [a for a in self._histories.get(key, ()) if a.at >= now - HISTORY_WINDOW]
        kept.append(attempt)
        self._histories[key] = kept
