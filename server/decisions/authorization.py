"""An authorization as the decision core sees it: the switch's request, checked field by field
by the transport and free of protobuf. Money is minor units; times are UTC epoch milliseconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from forestgate.payments.money import Money


@dataclass(frozen=True, slots=True)
class PastDecline:
    """An earlier declined attempt of the same payment."""

    authorization_id: str  # empty when ForestGate did not score it
    ts_ms: int
    route_id: str
    response_code: str
    merchant_advice_code: str | None
    credential_changed: bool


@dataclass(frozen=True, slots=True)
class Card:
    bin: str  # 6 to 8 digits
    card_key: str  # payments.history.card_key(par, pan_hash): PAR when known
    expiry_month_index: int  # year * 12 + month - 1
    brand: str  # "visa" or "mastercard"
    funding: str  # "credit", "debit" or "prepaid"
    product_tier: str  # "" when unknown
    commercial: bool
    issuer_country: str
    billing_currency: str
    network_token: bool


@dataclass(frozen=True, slots=True)
class Merchant:
    id: str
    country: str
    mcc: int
    local_time: dt.datetime | None  # naive local wall time, as the switch sent it


@dataclass(frozen=True, slots=True)
class Authorization:
    id: str
    payment_id: str
    ts_ms: int
    amount: Money
    card: Card
    merchant: Merchant
    channel: str  # payments.features.CHANNELS value, "" when unspecified
    cit: bool
    card_present: bool
    cof_type: str  # payments.features.COF_TYPES value
    initial_cof: bool
    three_ds: bool
    challenge: bool
    exemption: str  # payments.features.EXEMPTIONS value
    cvv_present: bool
    avs_provided: bool
    customer_in_session: bool
    credential_changed: bool
    ip_country: str | None
    routes: tuple[str, ...]
    declines: tuple[PastDecline, ...]
    advise_retry: bool
    approval_value_minor: int | None  # None: the amount times the default margin

    @property
    def at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.ts_ms / 1000, dt.UTC)
