"""The attempts Score decided, as the decision state keeps them until their outcome: the
features request and the guardrail's attempt record, and their plain-JSON form for snapshots and
for Redis."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from forestgate.payments.featurespec import Request
from forestgate.payments.history import Attempt
from forestgate.server.decisions.authorization import Authorization


@dataclass(slots=True)
class SeenAttempt:
    """An attempt Score decided: its features request, and its guardrail record (approved and
    response code are placeholders until the outcome arrives)."""

    request: Request
    attempt: Attempt
    reported: bool = False

    def to_state(self) -> dict[str, Any]:
        attempt = dataclasses.asdict(self.attempt)
        attempt["at"] = self.attempt.at.isoformat()
        return {
            "request": dataclasses.asdict(self.request),
            "attempt": attempt,
            "reported": self.reported,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeenAttempt:
        attempt = dict(state["attempt"])
        attempt["at"] = dt.datetime.fromisoformat(attempt["at"])
        return cls(Request(**state["request"]), Attempt(**attempt), bool(state["reported"]))

    def answered(self, route_id: str, approved: bool, code: str, advice: str | None) -> None:
        """Fill in the outcome: the route it went on and the issuer's answer."""
        self.request = dataclasses.replace(self.request, route_id=route_id)
        self.attempt = dataclasses.replace(
            self.attempt,
            route=route_id,
            approved=approved,
            response_code=code,
            merchant_advice_code=advice,
        )
        self.reported = True


def attempt_record(auth: Authorization, request: Request, route: str = "") -> Attempt:
    """The guardrail's record of the attempt ``request`` describes, on ``route`` (default: the
    request's); its answer is filled in when the outcome arrives."""
    return Attempt(
        at=dt.datetime.fromtimestamp(request.ts_ms / 1000, dt.UTC),
        card_key=auth.card.card_key, merchant_id=auth.merchant.id,
        amount_minor=auth.amount.amount_minor, currency=auth.amount.currency,
        network=auth.card.brand, response_code="", merchant_advice_code=None, approved=False,
        route=route or request.route_id, card_present=auth.card_present, is_mit=not auth.cit,
        issuer_country=auth.card.issuer_country, credential_changed=request.credential_changed,
        three_ds=auth.three_ds, payment_id=auth.payment_id,
    )  # fmt: skip
