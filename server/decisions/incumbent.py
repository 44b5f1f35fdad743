"""The incumbent rules: what answers when a model cannot (it missed its share of the deadline, is
not loaded, or a feature is unavailable). They are the switch's rules before ForestGate:
route to a local acquirer when one takes the card, else to the cheapest; retry on a fixed
schedule (1, 3 and 7 days after the first decline), and only what the guardrail allows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from forestgate.payments.action import Action, ActionKind
from forestgate.payments.guardrail import History, Rules, check
from forestgate.payments.routetable import RouteTable
from forestgate.server.decisions.advice import Advice
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


def incumbent_retry(
    auth: Authorization, history: History, rules: Rules, now: dt.datetime
) -> Advice:
    """The fixed schedule's next retry, on the declined route, if the guardrail allows it."""
    declines = auth.declines
    if len(declines) > len(SCHEDULE_DAYS):
        return Advice(ActionKind.NO_RETRY, None, "", 0.0, 0, "", "fixed schedule exhausted")
    first = dt.datetime.fromtimestamp(declines[0].ts_ms / 1000, dt.UTC)
    at = max(now, first + dt.timedelta(days=SCHEDULE_DAYS[len(declines) - 1]))
    action = Action(
        ActionKind.RETRY, at, declines[-1].route_id, auth.amount.amount_minor,
        auth.amount.currency, card_present=auth.card_present,
        customer_in_session=auth.customer_in_session, is_mit=not auth.cit,
    )  # fmt: skip
    verdict = check(action, history, rules, now)
    if not verdict.allowed:
        return Advice(
            ActionKind.NO_RETRY, verdict.earliest_retry_at, "", 0.0, 0, verdict.rule or "",
            verdict.reason, verdict.cancel_recurring,
        )  # fmt: skip
    return Advice(
        ActionKind.RETRY, at, action.route, 0.0, 0, verdict.rule or "", verdict.reason,
        verdict.cancel_recurring,
    )  # fmt: skip
