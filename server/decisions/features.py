"""From an authorization to the models' feature requests: the request side of
``payments.features.Request``, with the reference data filling in what a switch does not send
(issuer id, USD amount, the merchant's clock when the switch sent no local time).
"""

from __future__ import annotations

import dataclasses

from forestgate.payments.features import Request
from forestgate.server.decisions.authorization import Authorization, PastDecline
from forestgate.server.decisions.reference_data import ReferenceData


def feature_request(auth: Authorization, world: ReferenceData, *, attempt_id: int) -> Request:
    """The attempt ``auth`` describes, on its first candidate route, as the features see it.

    ``attempt_id`` is the server's own sequence number of the attempt: the feature state orders
    attempts by (time, id) and looks declines up by it.
    """
    card, merchant = auth.card, auth.merchant
    local = merchant.local_time or world.local_time(auth.ts_ms, merchant.country) or auth.at
    at = auth.at
    amount_usd = world.amount_usd(auth.amount)
    billing = card.billing_currency or world.currency.get(card.issuer_country, auth.amount.currency)
    return Request(
        attempt_id=attempt_id,
        payment_id=auth.payment_id,
        ts_ms=auth.ts_ms,
        card_key=card.card_key,
        bin8=card.bin,
        issuer_id=world.issuer_id(card.bin),
        issuer_country=card.issuer_country,
        merchant_id=merchant.id,
        merchant_country=merchant.country,
        route_id=auth.routes[0],
        amount_usd=0.0 if amount_usd is None else amount_usd,
        fx_needed=auth.amount.currency != billing,
        months_to_expiry=card.expiry_month_index - (at.year * 12 + at.month - 1),
        attempt_no=len(auth.declines) + 1,
        is_retry=bool(auth.declines),
        local_hour=local.hour,
        dow=local.isoweekday(),
        dom=local.day,
        brand=card.brand,
        funding=card.funding,
        product_tier=card.product_tier,
        is_commercial=card.commercial,
        mcc=merchant.mcc,
        channel=auth.channel,
        cit=auth.cit,
        cof_type=auth.cof_type,
        is_initial_cof=auth.initial_cof,
        network_token=card.network_token,
        three_ds=auth.three_ds,
        challenge=auth.challenge,
        sca_exemption=auth.exemption,
        cvv_present=auth.cvv_present,
        avs_provided=auth.avs_provided,
        customer_in_session=auth.customer_in_session,
        credential_changed=auth.credential_changed,
        ip_country=auth.ip_country,
    )


def decline_request(
    auth: Authorization, decline: PastDecline, world: ReferenceData, *, attempt_id: int
) -> Request:
    """A past decline the server did not score, rebuilt from the retry consultation: the same
    payment and card at the decline's time and route, as its ``attempt_no``-th attempt."""
    index = auth.declines.index(decline)
    base = feature_request(auth, world, attempt_id=attempt_id)
    # The decline's own wall clock when the merchant's country is known, else the request's.
    local = world.local_time(decline.ts_ms, auth.merchant.country)
    return dataclasses.replace(
        base,
        local_hour=base.local_hour if local is None else local.hour,
        dow=base.dow if local is None else local.isoweekday(),
        dom=base.dom if local is None else local.day,
        ts_ms=decline.ts_ms,
        route_id=decline.route_id,
        attempt_no=index + 1,
        is_retry=index > 0,
        credential_changed=decline.credential_changed,
    )
