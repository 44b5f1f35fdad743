"""The simulator's own guardrail: every reattempt a policy sends is checked with
``forestgate.payments.guardrail.check`` against the attempts that arm has sent so far, keyed by
card (PAR when present) and merchant, and a denial is counted as a violation."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from forestgate.clients.simulate.dataset import Payment
from forestgate.payments.guardrail import Action, Attempt, History, Rules, Verdict, card_key, check


@dataclass
class Ledger:
    """One arm's attempts per card and merchant, and the verdicts on its reattempts."""

    rules: Rules = field(default_factory=Rules.load)
    checked: int = 0
    violations: Counter[str] = field(default_factory=Counter)  # by the rule that denied
    _attempts: dict[tuple[str, str], list[Attempt]] = field(default_factory=dict)

    @staticmethod
    def key(payment: Payment) -> tuple[str, str]:
        row = payment.row
        return card_key(row["par"], str(row["pan_hash"])), str(row["merchant_id"])

    def file(self, payment: Payment, attempt: Attempt) -> None:
        self._attempts.setdefault(self.key(payment), []).append(attempt)

    def check(self, payment: Payment, action: Action, now: dt.datetime) -> Verdict:
        """The guardrail's verdict on ``action`` decided at ``now`` (the decline it retries);
        counted as a violation when denied."""
        card, merchant = self.key(payment)
        # Other payments of the card may already be filed past ``now``: the guardrail sees the
        # past only, as it would have at the time.
        past = [a for a in self._attempts.get((card, merchant), []) if a.at <= now]
        verdict = check(action, History(card, merchant, tuple(past)), self.rules, now)
        self.checked += 1
        if not verdict.allowed:
            self.violations[verdict.rule or "unknown"] += 1
        return verdict


def attempt_of(
    payment: Payment,
    *,
    at: dt.datetime,
    route_id: str,
    approved: bool,
    response_code: str,
    merchant_advice_code: str,
    credential_changed: bool = False,
    three_ds: bool = False,
) -> Attempt:
    """A sent attempt of ``payment`` as the guardrail files it."""
    row = payment.row
    card, merchant = Ledger.key(payment)
    return Attempt(
        at=at,
        card_key=card,
        merchant_id=merchant,
        amount_minor=int(row["amount_minor"]),
        currency=str(row["currency"]),
        network=str(row["brand"]),
        response_code=response_code,
        merchant_advice_code=merchant_advice_code or None,
        approved=approved,
        route=route_id,
        is_mit=not payment.is_cit,
        issuer_country=str(row["issuer_country"]),
        credential_changed=credential_changed,
        three_ds=three_ds or bool(row["three_ds"]),
        payment_id=payment.payment_id,
    )
