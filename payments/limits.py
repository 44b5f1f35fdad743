"""The numeric limits of the retry guardrail, read from the ``guardrail`` section of rules.yaml:
Visa's reattempt cap, Mastercard's never-retry window and excessive-attempt thresholds, the
internal budget and the country carve-outs, each effective-dated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from forestgate.payments.action import REATTEMPT_KINDS, ActionKind
from forestgate.payments.document import Node
from forestgate.payments.timeline import Timeline, parse_timeline

_COUNTRY = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class CarveOut:
    """H12: cards issued in ``issuer_country`` get none of the ``deny`` kinds of reattempt."""

    issuer_country: str
    deny: frozenset[ActionKind]
    source: str


@dataclass(frozen=True, slots=True)
class Limits:
    """Every number the guardrail applies, as a value per date."""

    visa_max_reattempts: Timeline[int]
    visa_window_days: Timeline[int]
    mastercard_never_retry_days: Timeline[int]
    mastercard_max_declines_24h: Timeline[int]
    mastercard_max_declines_30d: Timeline[int]
    internal_max_retries: Timeline[int]
    internal_window_days: Timeline[int]
    country_carve_outs: tuple[CarveOut, ...]

    def carve_out(self, issuer_country: str | None) -> CarveOut | None:
        for carve_out in self.country_carve_outs:
            if carve_out.issuer_country == issuer_country:
                return carve_out
        return None


# Every effective-dated count of the guardrail section, in file order.
LIMIT_NAMES = (
    "visa_max_reattempts",
    "visa_window_days",
    "mastercard_never_retry_days",
    "mastercard_max_declines_24h",
    "mastercard_max_declines_30d",
    "internal_max_retries",
    "internal_window_days",
)


def parse_limits(node: Node) -> Limits:
    """The ``guardrail`` section; unknown fields, bad numbers or dates are ConfigErrors."""
    fields = node.fields(required=LIMIT_NAMES, optional=("country_carve_outs",))

    def count(item: Node, period: dict[str, Node]) -> int:
        return period["value"].integer(minimum=1)

    timelines = {name: parse_timeline(fields[name], count) for name in LIMIT_NAMES}
    carve_outs: list[CarveOut] = []
    if "country_carve_outs" in fields:
        for item in fields["country_carve_outs"].sequence():
            entry = item.fields(required=("issuer_country", "deny"), optional=("source",))
            country = entry["issuer_country"].text()
            if not _COUNTRY.fullmatch(country):
                raise entry["issuer_country"].error(
                    f"expected an ISO 3166 alpha-2 country code, got {country!r}"
                )
            if any(c.issuer_country == country for c in carve_outs):
                raise entry["issuer_country"].error(f"country {country} listed twice")
            kinds: set[ActionKind] = set()
            for kind_node in entry["deny"].sequence():
                kind = kind_node.text()
                try:
                    action_kind = ActionKind(kind)
                except ValueError:
                    raise kind_node.error(
                        f"unknown action kind {kind!r}; expected one of "
                        f"{', '.join(sorted(k.value for k in REATTEMPT_KINDS))}"
                    ) from None
                if action_kind not in REATTEMPT_KINDS:
                    raise kind_node.error(f"{kind!r} is not a reattempt and cannot be denied")
                kinds.add(action_kind)
            source = entry["source"].text() if "source" in entry else ""
            carve_outs.append(CarveOut(country, frozenset(kinds), source))
    return Limits(
        visa_max_reattempts=timelines["visa_max_reattempts"],
        visa_window_days=timelines["visa_window_days"],
        mastercard_never_retry_days=timelines["mastercard_never_retry_days"],
        mastercard_max_declines_24h=timelines["mastercard_max_declines_24h"],
        mastercard_max_declines_30d=timelines["mastercard_max_declines_30d"],
        internal_max_retries=timelines["internal_max_retries"],
        internal_window_days=timelines["internal_window_days"],
        country_carve_outs=tuple(carve_outs),
    )
