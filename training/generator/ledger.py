"""The guardrail's view of the simulation: every sent attempt filed per card key and merchant as
a ``forestgate.payments.guardrail.Attempt``, and ``guardrail.check`` asked for each reattempt in
time order against exactly the history before it.

Compliant policies send only what the guardrail allows; the legacy policy sends regardless and
the verdict is recorded as its violation. Code classification is memoised per (network, code,
day): the guardrail classifies every past attempt on every call, and the simulation makes
hundreds of thousands of calls.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from forestgate.payments.action import Action, ActionKind
from forestgate.payments.codes import CodeInfo, ResponseCodes
from forestgate.payments.guardrail import Verdict, check
from forestgate.payments.history import Attempt, History
from forestgate.payments.rulebook import Rules


class _MemoCodes(ResponseCodes):
    """ResponseCodes with classify() cached; the table is immutable, so the cache is exact."""

    def classify(self, network: str, code: str, on: dt.date) -> CodeInfo:
        day = on.astimezone(dt.UTC).date() if isinstance(on, dt.datetime) else on
        key = (network, code, day)
        cache: dict[tuple[str, str, dt.date], CodeInfo] = self.__dict__.setdefault("_memo", {})
        info = cache.get(key)
        if info is None:
            info = ResponseCodes.classify(self, network, code, day)
            cache[key] = info
        return info


def memoised(rules: Rules) -> Rules:
    c = rules.codes
    codes = _MemoCodes(
        version=c.version,
        source=c.source,
        tables=c.tables,
        visa_categories=c.visa_categories,
        mc_groups=c.mc_groups,
        advice=c.advice,
    )
    return Rules(codes, rules.limits)


@dataclass(frozen=True, slots=True)
class Request:
    """What the policy wants to send, in the guardrail's terms."""

    kind: ActionKind
    at: dt.datetime
    route: str
    amount_minor: int
    currency: str
    credential_changed: bool
    customer_in_session: bool
    is_mit: bool
    payment_id: str  # the payment retried: other payments of the card may come in between


# The order of the tuples filed; every field of guardrail.Attempt is named.
ATTEMPT_FIELDS = (
    "at", "card_key", "merchant_id", "amount_minor", "currency", "network", "response_code",
    "merchant_advice_code", "approved", "route", "card_present", "is_mit", "issuer_country",
    "credential_changed", "three_ds", "payment_id",
)  # fmt: skip


class Ledger:
    """Sent attempts per (card key, merchant), oldest first.

    Filing is cheap (a tuple per attempt); guardrail ``Attempt`` objects are built only for the
    card+merchant histories a reattempt actually asks about, and cached.
    """

    def __init__(self, rules: Rules) -> None:
        self.rules = memoised(rules)
        self._rows: dict[int, list[tuple[object, ...]]] = {}
        self._built: dict[int, list[Attempt]] = {}

    def file(self, key: int, row: tuple[object, ...]) -> None:
        """File an attempt: ``row`` holds Attempt's fields in declaration order."""
        self._rows.setdefault(key, []).append(row)

    def history(self, key: int, card: str, merchant: str) -> History:
        rows = self._rows.get(key, [])
        built = self._built.setdefault(key, [])
        for row in rows[len(built) :]:
            built.append(Attempt(**dict(zip(ATTEMPT_FIELDS, row, strict=True))))  # type: ignore[arg-type]
        return History(card, merchant, tuple(built))

    def check(self, key: int, card: str, merchant: str, request: Request) -> Verdict:
        history = self.history(key, card, merchant)
        action = Action(
            kind=request.kind,
            at=request.at,
            route=request.route,
            amount_minor=request.amount_minor,
            currency=request.currency,
            credential_changed=request.credential_changed,
            customer_in_session=request.customer_in_session,
            is_mit=request.is_mit,
            payment_id=request.payment_id,
        )
        return check(action, history, self.rules, request.at)
