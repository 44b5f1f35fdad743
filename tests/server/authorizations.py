"""Valid forestgate.v1 ScoreRequests for tests and benchmarks, built as a switch would send them;
tests change one field at a time to check how it is refused."""

from __future__ import annotations

import datetime as dt
import itertools

from forestgate.protos.forestgate.v1 import scoring_pb2 as pb

ALL_ROUTES = ("A-US", "A-EU", "B-GB", "C-BR", "D-XB", "E-US-DEBIT")  # a US debit card takes all
NOW = dt.datetime(2026, 12, 3, 15, 0, tzinfo=dt.UTC)
_ids = itertools.count(1)


def score_request(
    *, routes: tuple[str, ...] = ("A-US", "D-XB"), at: dt.datetime = NOW, card: str = "c1",
    merchant: str = "M0001", amount_minor: int = 4_999,
) -> pb.ScoreRequest:  # fmt: skip
    """A US Visa debit card buying online from a US merchant, first attempt."""
    n = next(_ids)
    msg = pb.ScoreRequest(
        authorization_id=f"auth-{n}", payment_id=f"pay-{n}",
        amount=pb.Money(amount_minor=amount_minor, currency="USD"),
        card=pb.Card(
            bin="41111111", pan_hash=f"hash{card}aaaaaaaaaaaaaaaaaaaaa", expiry_year=2029,
            expiry_month=6, brand=pb.BRAND_VISA, funding=pb.FUNDING_DEBIT,
            product_tier=pb.PRODUCT_TIER_STANDARD, issuer_country="US",
        ),
        merchant=pb.Merchant(id=merchant, country="US", mcc=5411),
        channel=pb.CHANNEL_ECOMMERCE, initiator=pb.INITIATOR_CIT,
        pos_entry_mode=pb.POS_ENTRY_MODE_ECOMMERCE, cvv_present=True, avs_provided=True,
        customer_in_session=True, candidate_routes=list(routes),
    )  # fmt: skip
    msg.time.FromDatetime(at)
    return msg


def retry_request(
    first: pb.ScoreRequest, *, code: str, advice_code: str = "", declined_route: str = "A-US",
    at: dt.datetime | None = None, brand: int = pb.BRAND_VISA,
) -> pb.ScoreRequest:  # fmt: skip
    """A consultation after ``first`` was declined with ``code``: a new attempt of the same
    payment, asking for retry advice."""
    msg = pb.ScoreRequest()
    msg.CopyFrom(first)
    msg.authorization_id = f"auth-{next(_ids)}"
    msg.card.brand = brand  # type: ignore[assignment]
    decline = msg.declines.add(
        authorization_id=first.authorization_id, route_id=declined_route, response_code=code,
        merchant_advice_code=advice_code,
    )  # fmt: skip
    decline.time.CopyFrom(first.time)
    msg.time.FromDatetime(at or first.time.ToDatetime(dt.UTC) + dt.timedelta(seconds=2))
    msg.advise_retry = True
    return msg
