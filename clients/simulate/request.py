"""ScoreRequests built from a held-out payment's logged request columns (never a PAN: the log
holds its keyed hash and the PAR) and, for a reattempt, the payment's earlier declines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from forestgate.clients.simulate.dataset import Payment
from forestgate.clients.simulate.episode import Attempted
from forestgate.clients.simulate.pricing import Pricing
from forestgate.protos.forestgate.v1 import scoring_pb2 as pb

CHANNELS = {
    "ecommerce": pb.CHANNEL_ECOMMERCE,
    "in_app": pb.CHANNEL_IN_APP,
    "recurring": pb.CHANNEL_RECURRING,
    "unscheduled_cof": pb.CHANNEL_UNSCHEDULED_COF,
    "moto": pb.CHANNEL_MOTO,
}
STORED = {
    "none": pb.STORED_CREDENTIAL_NONE,
    "recurring": pb.STORED_CREDENTIAL_RECURRING,
    "unscheduled": pb.STORED_CREDENTIAL_UNSCHEDULED,
    "cit_stored": pb.STORED_CREDENTIAL_CIT_STORED,
}
EXEMPTIONS = {
    "none": pb.EXEMPTION_NONE,
    "low_value": pb.EXEMPTION_LOW_VALUE,
    "tra": pb.EXEMPTION_TRA,
}
BRANDS = {"visa": pb.BRAND_VISA, "mastercard": pb.BRAND_MASTERCARD}
FUNDING = {"credit": pb.FUNDING_CREDIT, "debit": pb.FUNDING_DEBIT, "prepaid": pb.FUNDING_PREPAID}
TIERS = {
    "standard": pb.PRODUCT_TIER_STANDARD,
    "gold": pb.PRODUCT_TIER_GOLD,
    "platinum": pb.PRODUCT_TIER_PLATINUM,
    "business": pb.PRODUCT_TIER_BUSINESS,
}


def entry_mode(row: dict[str, object]) -> pb.PosEntryMode:
    """DE 22 as the generator logs it ("09" token, "10" stored, "01" keyed, "81" e-commerce),
    reduced to the proto's modes: a token or stored card is on file, keyed only for MOTO."""
    if row["cof_type"] != "none":
        return pb.POS_ENTRY_MODE_CREDENTIAL_ON_FILE
    if row["channel"] == "moto":
        return pb.POS_ENTRY_MODE_MANUAL
    return pb.POS_ENTRY_MODE_ECOMMERCE


def card(row: dict[str, object], at: dt.datetime) -> pb.Card:
    months = at.year * 12 + (at.month - 1) + int(row["months_to_expiry"])  # type: ignore[call-overload]
    return pb.Card(
        bin=str(row["bin8"]),
        pan_hash=str(row["pan_hash"]),
        par=str(row["par"] or ""),
        expiry_year=months // 12,
        expiry_month=months % 12 + 1,
        brand=BRANDS.get(str(row["brand"]), pb.BRAND_UNSPECIFIED),
        funding=FUNDING.get(str(row["funding"]), pb.FUNDING_UNSPECIFIED),
        product_tier=TIERS.get(str(row["product_tier"]), pb.PRODUCT_TIER_UNSPECIFIED),
        commercial=bool(row["is_commercial"]),
        issuer_country=str(row["issuer_country"]),
        billing_currency=str(row["card_currency"] or ""),
        network_token=bool(row["network_token"]),
    )


def score_request(
    payment: Payment,
    authorization_id: str,
    *,
    at: dt.datetime,
    declines: Sequence[Attempted] = (),
    candidates: Sequence[str] | None = None,
    advise: bool | None = None,
) -> pb.ScoreRequest:
    """The request of one attempt of ``payment`` sent at ``at``; with ``declines`` it asks for
    retry advice on the last of them, unless ``advise`` is False (a reattempt being routed)."""
    row = payment.row
    cit = payment.is_cit
    return pb.ScoreRequest(
        authorization_id=authorization_id,
        payment_id=payment.payment_id,
        time=at,  # the generated module's own Timestamp class takes a datetime
        amount=pb.Money(amount_minor=int(row["amount_minor"]), currency=str(row["currency"])),
        card=card(row, payment.first.at),
        merchant=pb.Merchant(
            id=str(row["merchant_id"]), country=str(row["merchant_country"]), mcc=int(row["mcc"])
        ),
        channel=CHANNELS.get(str(row["channel"]), pb.CHANNEL_UNSPECIFIED),
        initiator=pb.INITIATOR_CIT if cit else pb.INITIATOR_MIT,
        pos_entry_mode=entry_mode(row),
        stored_credential=STORED.get(str(row["cof_type"]), pb.STORED_CREDENTIAL_NONE),
        initial_stored_credential=bool(row["is_initial_cof"]),
        authentication=pb.Authentication(
            three_ds=bool(row["three_ds"]),
            eci=str(row["eci"] or "") if row["three_ds"] else "",
            challenge=bool(row["challenge"]),
            exemption=EXEMPTIONS.get(str(row["sca_exemption"]), pb.EXEMPTION_NONE),
        ),
        cvv_present=bool(row["cvv_present"]),
        avs_provided=bool(row["avs_provided"]),
        customer_in_session=bool(row["customer_in_session"]),
        credential_changed=bool(row["credential_changed"]),
        ip_country=str(row["ip_country"] or ""),
        candidate_routes=list(payment.eligible_routes if candidates is None else candidates),
        declines=[decline(a) for a in declines],
        advise_retry=bool(declines) if advise is None else advise,
        approval_value=pb.Money(
            amount_minor=Pricing.value_minor(payment), currency=str(row["currency"])
        ),
    )


def decline(attempt: Attempted) -> pb.Decline:
    return pb.Decline(
        authorization_id=attempt.authorization_id,
        time=attempt.at,
        route_id=attempt.route_id,
        response_code=attempt.response_code,
        merchant_advice_code=attempt.merchant_advice_code,
    )


def outcome(attempt: Attempted) -> pb.ReportOutcomeRequest:
    return pb.ReportOutcomeRequest(
        authorization_id=attempt.authorization_id,
        approved=attempt.approved,
        response_code=attempt.response_code,
        merchant_advice_code=attempt.merchant_advice_code,
        route_id=attempt.route_id,
        time=attempt.at,
    )
