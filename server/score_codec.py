"""forestgate.v1 messages to the decision core's objects and back, checked field by field.

Every refusal is InvalidInput naming the field as the proto spells it (``card.pan_hash``,
``candidate_routes[2]``), so a switch engineer can fix the call from the message alone. A check
formats its message only when it fails: this runs on every Score, and building some forty
messages that are never raised was about a third of decoding one.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from forestgate.errors import InvalidInput
from forestgate.payments.history import card_key
from forestgate.payments.money import Money, check_currency
from forestgate.payments.pan import contains_pan
from forestgate.payments.routetable import RouteTable
from forestgate.protos.forestgate.v1 import scoring_pb2 as pb
from forestgate.server.decisions.advice import Advice
from forestgate.server.decisions.authorization import Authorization, Card, Merchant, PastDecline
from forestgate.server.decisions.decision import Decision, Outcome

MAX_ID = 128
MAX_ROUTES = 32
MAX_DECLINES = 64
_COUNTRY = re.compile(r"[A-Z]{2}")
_BIN = re.compile(r"\d{6,8}")
_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=.:]+")
_CODE = re.compile(r"[A-Z0-9]{1,3}")

BRANDS = {pb.BRAND_VISA: "visa", pb.BRAND_MASTERCARD: "mastercard"}
FUNDING = {pb.FUNDING_CREDIT: "credit", pb.FUNDING_DEBIT: "debit", pb.FUNDING_PREPAID: "prepaid"}
TIERS = {
    pb.PRODUCT_TIER_UNSPECIFIED: "", pb.PRODUCT_TIER_STANDARD: "standard",
    pb.PRODUCT_TIER_GOLD: "gold", pb.PRODUCT_TIER_PLATINUM: "platinum",
    pb.PRODUCT_TIER_BUSINESS: "business",
}  # fmt: skip
CHANNELS = {
    pb.CHANNEL_UNSPECIFIED: "", pb.CHANNEL_ECOMMERCE: "ecommerce", pb.CHANNEL_IN_APP: "in_app",
    pb.CHANNEL_RECURRING: "recurring", pb.CHANNEL_UNSCHEDULED_COF: "unscheduled_cof",
    pb.CHANNEL_MOTO: "moto",
}  # fmt: skip
COF_TYPES = {
    pb.STORED_CREDENTIAL_NONE: "none", pb.STORED_CREDENTIAL_RECURRING: "recurring",
    pb.STORED_CREDENTIAL_UNSCHEDULED: "unscheduled", pb.STORED_CREDENTIAL_CIT_STORED: "cit_stored",
}  # fmt: skip
EXEMPTIONS = {
    pb.EXEMPTION_NONE: "none",
    pb.EXEMPTION_LOW_VALUE: "low_value",
    pb.EXEMPTION_TRA: "tra",
}
CARD_PRESENT = {pb.POS_ENTRY_MODE_CHIP, pb.POS_ENTRY_MODE_CONTACTLESS, pb.POS_ENTRY_MODE_MAGSTRIPE}
ACTIONS = {
    "no_retry": pb.RETRY_ACTION_NO_RETRY, "retry": pb.RETRY_ACTION_RETRY,
    "cascade": pb.RETRY_ACTION_CASCADE, "cit_3ds": pb.RETRY_ACTION_CIT_3DS,
    "update_credentials": pb.RETRY_ACTION_UPDATE_CREDENTIALS,
}  # fmt: skip


def authorization(msg: pb.ScoreRequest, routes: RouteTable, field: str = "") -> Authorization:
    """The checked authorization of a ScoreRequest; ``field`` prefixes names inside a batch."""
    ts_ms = _time_ms(msg, "time", field) if msg.HasField("time") else time.time_ns() // 1_000_000
    amount = _money(msg.amount, f"{field}amount", present=msg.HasField("amount"))
    value = None
    if msg.HasField("approval_value"):
        money = _money(msg.approval_value, f"{field}approval_value", present=True)
        if money.currency != amount.currency:
            raise InvalidInput(f"{field}approval_value.currency: must be the amount's currency "
                               f"{amount.currency}")  # fmt: skip
        value = money.amount_minor
    declines = _declines(msg, routes, field, ts_ms)
    authentication = msg.authentication
    return Authorization(
        id=_identifier(msg.authorization_id, f"{field}authorization_id"),
        payment_id=_identifier(msg.payment_id, f"{field}payment_id"),
        ts_ms=ts_ms, amount=amount, card=_card(msg.card, f"{field}card", ts_ms),
        merchant=_merchant(msg.merchant, f"{field}merchant"),
        channel=_enum(CHANNELS, msg.channel, f"{field}channel"),
        cit=_initiator(msg.initiator, f"{field}initiator"),
        card_present=msg.pos_entry_mode in CARD_PRESENT,
        cof_type=_enum(COF_TYPES, msg.stored_credential, f"{field}stored_credential"),
        initial_cof=msg.initial_stored_credential,
        three_ds=authentication.three_ds, challenge=authentication.challenge,
        exemption=_enum(EXEMPTIONS, authentication.exemption, f"{field}authentication.exemption"),
        cvv_present=msg.cvv_present, avs_provided=msg.avs_provided,
        customer_in_session=msg.customer_in_session, credential_changed=msg.credential_changed,
        ip_country=_country(msg.ip_country, f"{field}ip_country", optional=True) or None,
        routes=_routes(msg.candidate_routes, routes, f"{field}candidate_routes"),
        declines=declines, advise_retry=msg.advise_retry, approval_value_minor=value,
    )  # fmt: skip


def outcome(msg: pb.ReportOutcomeRequest) -> Outcome:
    return Outcome(
        _identifier(msg.authorization_id, "authorization_id"), msg.approved,
        _response_code(msg.response_code, "response_code"),
        _advice_code(msg.merchant_advice_code, "merchant_advice_code"), msg.route_id,
    )  # fmt: skip


def response(decision: Decision, trace_id: str = "") -> pb.ScoreResponse:
    out = pb.ScoreResponse(
        authorization_id=decision.authorization_id, chosen_route=decision.chosen_route,
        fallback=bool(decision.fallback_reason), fallback_reason=decision.fallback_reason,
        trace_id=trace_id,
    )  # fmt: skip
    for r in decision.routes:
        out.routes.add(
            route_id=r.route_id, p_approve=r.p_approve, expected_net_value_minor=r.net_value_minor,
            approval_cost_minor=r.price.approval_cost_minor,
            attempt_cost_minor=r.price.attempt_cost_minor,
            expected_fraud_loss_minor=r.price.fraud_loss_minor,
        )  # fmt: skip
    for name, version in decision.models:
        out.models.add(name=name, version=version)
    if decision.retry is not None:
        _advice(decision.retry, out.retry)
    return out


def _advice(advice: Advice, out: pb.RetryAdvice) -> None:
    out.action = ACTIONS[advice.action.value]
    if advice.at is not None:
        out.earliest_time.FromDatetime(advice.at)
    out.route_id = advice.route_id
    out.p_approve = advice.p_approve
    out.expected_net_value_minor = advice.net_value_minor
    out.rule, out.reason, out.cancel_recurring = advice.rule, advice.reason, advice.cancel_recurring


def _identifier(
    value: str, field: str, pan_rule: str = "looks like a card number; never send a PAN"
) -> str:
    if not value:
        raise InvalidInput(f"{field}: required")
    if contains_pan(value):
        raise InvalidInput(f"{field}: {pan_rule}")
    if len(value) > MAX_ID or not _TOKEN.fullmatch(value):
        raise InvalidInput(f"{field}: at most {MAX_ID} letters, digits or _-+/=.:")
    return value


def _money(msg: pb.Money, field: str, *, present: bool) -> Money:
    if not present:
        raise InvalidInput(f"{field}: required")
    currency, amount_minor = msg.currency, msg.amount_minor
    try:
        check_currency(currency)
    except InvalidInput:
        raise InvalidInput(f"{field}.currency: unknown ISO 4217 code {currency!r}") from None
    if amount_minor < 0:
        raise InvalidInput(f"{field}.amount_minor: must be >= 0, got {amount_minor}")
    return Money(amount_minor, currency)


def _card(msg: pb.Card, field: str, ts_ms: int) -> Card:
    if not _BIN.fullmatch(msg.bin):
        raise InvalidInput(f"{field}.bin: 6 to 8 digits")
    pan_hash, par = msg.pan_hash, msg.par
    if not (pan_hash or par):
        raise InvalidInput(f"{field}.pan_hash: a PAN hash or a PAR is required")
    for name, value in (("pan_hash", pan_hash), ("par", par)):
        if value:
            _identifier(value, f"{field}.{name}",
                        "looks like a card number; send a keyed hash, never the PAN")  # fmt: skip
    expiry = _expiry(msg, field, ts_ms)
    issuer = _country(msg.issuer_country, f"{field}.issuer_country")
    billing = msg.billing_currency
    if billing:
        try:
            check_currency(billing)
        except InvalidInput:
            raise InvalidInput(
                f"{field}.billing_currency: unknown ISO 4217 code {billing!r}"
            ) from None
    return Card(
        bin=msg.bin, card_key=card_key(par or None, pan_hash),
        expiry_month_index=expiry, brand=_required(BRANDS, msg.brand, f"{field}.brand"),
        funding=_required(FUNDING, msg.funding, f"{field}.funding"),
        product_tier=TIERS.get(msg.product_tier, ""), commercial=msg.commercial,
        issuer_country=issuer, billing_currency=billing, network_token=msg.network_token,
    )  # fmt: skip


def _expiry(msg: pb.Card, field: str, ts_ms: int) -> int:
    """The card's expiry as a month index (year * 12 + month - 1), not before ``ts_ms``'s."""
    month, year = msg.expiry_month, msg.expiry_year
    if not 1 <= month <= 12:
        raise InvalidInput(f"{field}.expiry_month: must be 1-12")
    if not 2000 <= year <= 2099:
        raise InvalidInput(f"{field}.expiry_year: four digits, 2000-2099")
    now = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
    if year * 12 + month - 1 < now.year * 12 + now.month - 1:
        raise InvalidInput(f"{field}.expiry_year: the card expired ({month:02d}/{year})")
    return year * 12 + month - 1


def _merchant(msg: pb.Merchant, field: str) -> Merchant:
    mcc = msg.mcc
    if mcc > 9999:
        raise InvalidInput(f"{field}.mcc: four digits (ISO 18245)")
    local = None
    if msg.local_time:
        try:
            local = dt.datetime.fromisoformat(msg.local_time)
        except ValueError:
            local = None
        if local is None or local.tzinfo is not None:
            raise InvalidInput(f"{field}.local_time: YYYY-MM-DDTHH:MM:SS, the merchant's wall "
                               "clock without an offset")  # fmt: skip
    return Merchant(
        id=_identifier(msg.id, f"{field}.id"), country=_country(msg.country, f"{field}.country"),
        mcc=mcc, local_time=local,
    )  # fmt: skip


def _declines(
    msg: pb.ScoreRequest, routes: RouteTable, field: str, now_ms: int
) -> tuple[PastDecline, ...]:
    if not msg.declines:
        if msg.advise_retry:
            raise InvalidInput(f"{field}declines: advise_retry needs the decline to retry (at "
                               "least one entry)")  # fmt: skip
        return ()
    declines = tuple(_decline(d, routes, f"{field}declines[{i}]", now_ms)
                     for i, d in enumerate(msg.declines))  # fmt: skip
    if len(declines) > MAX_DECLINES:
        raise InvalidInput(f"{field}declines: at most {MAX_DECLINES} entries")
    return declines


def _decline(msg: pb.Decline, routes: RouteTable, field: str, now_ms: int) -> PastDecline:
    if not msg.HasField("time"):
        raise InvalidInput(f"{field}.time: required")
    ts_ms = _time_ms(msg, "time", f"{field}.")
    if ts_ms > now_ms:
        raise InvalidInput(f"{field}.time: after the request's time")
    if msg.route_id not in routes.routes:
        raise InvalidInput(f"{field}.route_id: unknown route {msg.route_id!r}")
    code = _response_code(msg.response_code, f"{field}.response_code")
    advice = _advice_code(msg.merchant_advice_code, f"{field}.merchant_advice_code")
    auth_id = _identifier(msg.authorization_id, f"{field}.authorization_id") \
        if msg.authorization_id else ""  # fmt: skip
    return PastDecline(auth_id, ts_ms, msg.route_id, code, advice, msg.credential_changed)


def _response_code(value: str, field: str) -> str:
    code = value.strip()
    if not _CODE.fullmatch(code):
        raise InvalidInput(f"{field}: 1-3 letters or digits (ISO 8583 DE 39)")
    return code


def _advice_code(value: str, field: str) -> str | None:
    """A Mastercard merchant advice code, or None when the field is empty."""
    mac = value.strip()
    if mac and not (mac.isdigit() and len(mac) == 2):
        raise InvalidInput(f"{field}: two digits or empty")
    return mac or None


def _routes(ids: Iterable[str], routes: RouteTable, field: str) -> tuple[str, ...]:
    chosen = tuple(ids)
    if not chosen:
        raise InvalidInput(f"{field}: at least one candidate route is required")
    if len(chosen) > MAX_ROUTES:
        raise InvalidInput(f"{field}: at most {MAX_ROUTES} routes")
    distinct = set(chosen)
    if len(distinct) == len(chosen) and routes.routes.keys() >= distinct:
        return chosen  # the common case, checked in two set operations
    for i, route in enumerate(chosen):
        if route not in routes.routes:
            raise InvalidInput(f"{field}[{i}]: unknown route {route!r}")
        if route in chosen[:i]:
            raise InvalidInput(f"{field}[{i}]: route {route!r} is listed twice")
    raise AssertionError("unreachable: the sets said a route was unknown or repeated")


def _time_ms(msg: object, name: str, field: str) -> int:
    stamp = getattr(msg, name)
    ms = stamp.seconds * 1000 + stamp.nanos // 1_000_000
    if not 0 < ms < 4_102_444_800_000:
        raise InvalidInput(f"{field}{name}: a UTC time between 1970 and 2100")
    return int(ms)


def _country(value: str, field: str, *, optional: bool = False) -> str:
    if optional and not value:
        return ""
    if not _COUNTRY.fullmatch(value):
        raise InvalidInput(f"{field}: ISO 3166-1 alpha-2 (two capitals), got {value!r}")
    return value


def _enum(table: Mapping[Any, str], value: int, field: str) -> str:
    name = table.get(value)
    if name is None:
        raise InvalidInput(f"{field}: unknown value {value}")
    return name


def _required(table: Mapping[Any, str], value: int, field: str) -> str:
    name = table.get(value)
    if name is None:
        raise InvalidInput(f"{field}: required (…_UNSPECIFIED is not a value)")
    return name


def _initiator(value: int, field: str) -> bool:
    if value not in (pb.INITIATOR_CIT, pb.INITIATOR_MIT):
        raise InvalidInput(f"{field}: required: INITIATOR_CIT or INITIATOR_MIT")
    return value == pb.INITIATOR_CIT


__all__ = ["authorization", "outcome", "response"]
