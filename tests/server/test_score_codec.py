"""The decision API's input check: every refusal is INVALID_ARGUMENT-class (InvalidInput) and
names the field as the proto spells it; a valid request becomes the core's Authorization."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from forestgate.errors import InvalidInput
from forestgate.payments.routetable import RouteTable
from forestgate.protos.forestgate.v1 import scoring_pb2 as pb
from forestgate.server.score_codec import authorization
from tests.server.authorizations import retry_request, score_request

ROUTES = RouteTable.load()
Edit = Callable[[pb.ScoreRequest], object]


def _set(path: str, value: object) -> Edit:
    def edit(msg: pb.ScoreRequest) -> None:
        *parents, leaf = path.split(".")
        target = msg
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, value)

    return edit


def _euro_value(msg: pb.ScoreRequest) -> None:
    msg.approval_value.CopyFrom(pb.Money(amount_minor=1, currency="EUR"))


def _routes(*ids: str) -> Edit:
    def edit(msg: pb.ScoreRequest) -> None:
        del msg.candidate_routes[:]
        msg.candidate_routes.extend(ids)

    return edit


CASES: list[tuple[str, Edit, str]] = [
    ("unknown currency", _set("amount.currency", "XYZ"), "amount.currency: unknown ISO 4217"),
    ("negative amount", _set("amount.amount_minor", -5), "amount.amount_minor: must be >= 0"),
    ("no amount", lambda m: m.ClearField("amount"), "amount: required"),
    ("PAN as hash", _set("card.pan_hash", "4111111111111111"), "card.pan_hash: looks like a card"),
    ("spaced PAN", _set("card.pan_hash", "4111 1111 1111 1111"), "card.pan_hash"),
    ("PAN as PAR", _set("card.par", "5555555555554444"), "card.par: looks like a card"),
    ("no card id", _set("card.pan_hash", ""), "card.pan_hash: a PAN hash or a PAR is required"),
    ("expired", _set("card.expiry_year", 2024), "card.expiry_year: the card expired"),
    ("month 13", _set("card.expiry_month", 13), "card.expiry_month: must be 1-12"),
    ("short BIN", _set("card.bin", "4111"), "card.bin: 6 to 8 digits"),
    ("no brand", _set("card.brand", pb.BRAND_UNSPECIFIED), "card.brand: required"),
    ("no funding", _set("card.funding", pb.FUNDING_UNSPECIFIED), "card.funding: required"),
    ("country case", _set("card.issuer_country", "us"), "card.issuer_country: ISO 3166-1"),
    ("billing", _set("card.billing_currency", "ABC"), "card.billing_currency: unknown"),
    ("unknown route", _routes("A-US", "Z-NOWHERE"), "candidate_routes[1]: unknown route"),
    ("empty routes", _routes(), "candidate_routes: at least one candidate route"),
    ("twice", _routes("A-US", "A-US"), "candidate_routes[1]: route 'A-US' is listed twice"),
    ("no id", _set("authorization_id", ""), "authorization_id: required"),
    ("PAN as id", _set("authorization_id", "4111111111111111"), "authorization_id: looks like"),
    ("no payment", _set("payment_id", ""), "payment_id: required"),
    ("no merchant", _set("merchant.id", ""), "merchant.id: required"),
    ("MCC", _set("merchant.mcc", 12345), "merchant.mcc: four digits"),
    ("local time", _set("merchant.local_time", "yesterday"), "merchant.local_time:"),
    ("initiator", _set("initiator", pb.INITIATOR_UNSPECIFIED), "initiator: required"),
    ("advise alone", _set("advise_retry", True), "declines: advise_retry needs the decline"),
    ("value currency", _euro_value, "approval_value.currency: must be the"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_field_is_refused_by_name(case: str, edit: Edit, message: str) -> None:
    msg = score_request()
    edit(msg)
    with pytest.raises(InvalidInput) as refused:
        authorization(msg, ROUTES)
    assert message in str(refused.value)


def test_a_bad_decline_is_named_with_its_index() -> None:
    msg = retry_request(score_request(), code="51")
    msg.declines[0].route_id = "Z-NOWHERE"
    with pytest.raises(InvalidInput, match=r"declines\[0\]\.route_id: unknown route"):
        authorization(msg, ROUTES)
    msg = retry_request(score_request(), code="51")
    msg.declines[0].time.FromSeconds(msg.time.seconds + 60)
    with pytest.raises(InvalidInput, match=r"declines\[0\]\.time: after the request's time"):
        authorization(msg, ROUTES)


def test_fields_inside_a_batch_carry_the_batch_index() -> None:
    msg = score_request()
    msg.amount.currency = "XYZ"
    with pytest.raises(InvalidInput, match=r"^requests\[3\]\.amount\.currency"):
        authorization(msg, ROUTES, "requests[3].")


def test_a_valid_request_becomes_the_authorization_the_core_decides() -> None:
    msg = retry_request(score_request(routes=("A-US", "E-US-DEBIT")), code="51")
    auth = authorization(msg, ROUTES)
    assert auth.routes == ("A-US", "E-US-DEBIT")
    assert auth.amount.amount_minor == 4_999 and auth.amount.currency == "USD"
    assert auth.card.card_key.startswith("pan:") and auth.card.brand == "visa"
    assert auth.card.funding == "debit" and auth.cit and not auth.card_present
    assert [d.response_code for d in auth.declines] == ["51"] and auth.advise_retry
    assert auth.ts_ms == msg.time.seconds * 1000
