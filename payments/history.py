"""The attempt history the guardrail counts from: past authorization attempts of one card at one
merchant, and the card key that joins PAN and network-token attempts into one budget.

Counters key on card (PAR when present, else PAN hash), merchant and amount, never on route: a
cascade to another acquirer is the same merchant reattempting the same card (H9, H10).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from forestgate.errors import InvalidInput
from forestgate.payments.money import check_currency


def card_key(par: str | None, pan_hash: str) -> str:
    """The counter key of a card: its PAR when known, so FPAN and network-token attempts share
    one budget (H10); else the PAN hash. Prefixed so the two spaces never collide."""
    if par:
        return f"par:{par}"
    if not pan_hash:
        raise InvalidInput("card_key needs a PAR or a PAN hash")
    return f"pan:{pan_hash}"


def require_utc(value: dt.datetime, what: str) -> None:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} must be a timezone-aware datetime, got {value!r}")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One past authorization attempt and its answer."""

    at: dt.datetime  # when it was sent, tz-aware
    card_key: str  # card_key(par, pan_hash)
    merchant_id: str
    amount_minor: int
    currency: str
    network: str  # "visa", "mastercard", ... (rules.yaml network names)
    response_code: str  # DE 39 as the network sent it
    merchant_advice_code: str | None  # Mastercard MAC, None when absent
    approved: bool
    route: str  # informational: counters never key on it
    card_present: bool = False
    is_mit: bool = False
    issuer_country: str | None = None  # ISO 3166 alpha-2 from the BIN
    credential_changed: bool = False  # sent with card data changed since the previous decline
    three_ds: bool = False  # authenticated with 3DS
    payment_id: str | None = None  # the payment it belongs to (first attempt and its retries)

    def __post_init__(self) -> None:
        require_utc(self.at, "Attempt.at")
        check_currency(self.currency)
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise InvalidInput("Attempt.amount_minor must be an int of minor units")
        if self.amount_minor < 0:
            raise InvalidInput(f"Attempt.amount_minor must be >= 0, got {self.amount_minor}")

    @property
    def declined(self) -> bool:
        return not self.approved

    def same_amount(self, amount_minor: int, currency: str) -> bool:
        return self.amount_minor == amount_minor and self.currency == currency


@dataclass(frozen=True, slots=True)
class History:
    """The attempts of one card at one merchant, oldest first, across every route and amount."""

    card_key: str
    merchant_id: str
    attempts: tuple[Attempt, ...]

    def __post_init__(self) -> None:
        for attempt in self.attempts:
            if attempt.card_key != self.card_key or attempt.merchant_id != self.merchant_id:
                raise InvalidInput(
                    f"History of card {self.card_key} at merchant {self.merchant_id} got an "
                    f"attempt of card {attempt.card_key} at merchant {attempt.merchant_id}"
                )
        ordered = tuple(sorted(self.attempts, key=lambda a: a.at))
        object.__setattr__(self, "attempts", ordered)

    @classmethod
    def of(cls, attempts: Iterable[Attempt], *, card_key: str, merchant_id: str) -> History:
        """The attempts of one card and merchant picked out of a mixed list."""
        mine = tuple(a for a in attempts if a.card_key == card_key and a.merchant_id == merchant_id)
        return cls(card_key, merchant_id, mine)

    def with_attempt(self, attempt: Attempt) -> History:
        """A new History with one more attempt."""
        return History(self.card_key, self.merchant_id, (*self.attempts, attempt))

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None
