"""The incumbent rules: what answers when a model cannot (it missed its share of the deadline, is
not loaded, or a feature is unavailable). They are the switch's rules before ForestGate:
route to a local acquirer when one takes the card, else to the cheapest; retry on a fixed
schedule (1, 3 and 7 days after the first decline), and only what the guardrail allows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from forestgate.payments.action import Action, ActionKind
from forestgate.payments.guardrail import Verdict
from forestgate.payments.routetable import RouteTable
from forestgate.server.decisions.advice import Advice, reattempt
from forestgate.server.decisions.authorization import Authorization
from forestgate.server.decisions.value import RoutePrice

SCHEDULE_DAYS = (1, 3, 7)  # after the payment's first decline


def incumbent_route(
    auth: Authorization, table: RouteTable, prices: Mapping[str, RoutePrice]
) -> list[str]:
    """The candidate routes in the incumbent's order: local ones first, each group by cost."""

    def order(route_id: str) -> tuple[bool, int, str]:
        local = auth.card.issuer_country in table[route_id].local_countries
        price = prices[route_id]
        return (not local, price.approval_cost_minor + price.attempt_cost_minor, route_id)

    return sorted(auth.routes, key=order)


def incumbent_retry(auth: Authorization, now: dt.datetime) -> Action | None:
    """The fixed schedule's next retry on the declined route; None once it is exhausted."""
    declines = auth.declines
    if len(declines) > len(SCHEDULE_DAYS):
        return None
    first = dt.datetime.fromtimestamp(declines[0].ts_ms / 1000, dt.UTC)
    at = max(now, first + dt.timedelta(days=SCHEDULE_DAYS[len(declines) - 1]))
    return reattempt(auth, ActionKind.RETRY, at, declines[-1].route_id)


def incumbent_advice(action: Action | None, verdict: Verdict | None) -> Advice:
    """The incumbent's retry, if the guardrail allowed it."""
    if action is None or verdict is None:
        return Advice(ActionKind.NO_RETRY, None, "", 0.0, 0, "", "fixed schedule exhausted")
    if not verdict.allowed:
        return Advice(
            ActionKind.NO_RETRY, verdict.earliest_retry_at, "", 0.0, 0, verdict.rule or "",
            verdict.reason, verdict.cancel_recurring,
        )  # fmt: skip
    return Advice(
        ActionKind.RETRY, action.at, action.route, 0.0, 0, verdict.rule or "", verdict.reason,
        verdict.cancel_recurring,
    )  # fmt: skip
