"""Small synthetic attempt streams for the online feature states: a few cards, routes and
merchants, NSF declines and recoveries among them, timestamps spread over days."""

from __future__ import annotations

import random

from forestgate.payments.codes import ResponseCodes
from forestgate.payments.features import DAY_MS, Answer, Request
from forestgate.payments.online import FeatureState
from forestgate.payments.routetable import RouteTable

T0_MS = 1_759_276_800_000  # 2025-10-01 00:00 UTC
ROUTES = ("A-US", "A-EU", "B-GB")
OFFSETS = {"US": -5 * 3600, "GB": 0}
# Approved, insufficient funds (a recovery may follow), do not honor.
ANSWERS = (Answer(True, "00"), Answer(False, "51"), Answer(False, "05"))

Stream = list[tuple[Request, Answer]]


def request(
    attempt_id: int,
    ts_ms: int,
    *,
    card: str = "card-1",
    payment: str | None = None,
    route: str = ROUTES[0],
    merchant: str = "m-1",
    amount_usd: float = 42.5,
) -> Request:
    return Request(
        attempt_id=attempt_id, payment_id=payment or f"pay-{attempt_id}", ts_ms=ts_ms,
        card_key=card, bin8="41111111", issuer_id="issuer-1", issuer_country="US",
        merchant_id=merchant, merchant_country="GB", route_id=route, amount_usd=amount_usd,
        fx_needed=True, months_to_expiry=20, attempt_no=1, is_retry=False, local_hour=12, dow=3,
        dom=1, brand="visa", funding="credit", product_tier="gold", is_commercial=False, mcc=5411,
        channel="ecommerce", cit=True, cof_type="none", is_initial_cof=False, network_token=False,
        three_ds=False, challenge=False, sca_exemption="none", cvv_present=True,
        avs_provided=True, customer_in_session=True, credential_changed=False, ip_country="US",
    )  # fmt: skip


def stream(n: int, *, seed: int, span_ms: int = 3 * DAY_MS) -> Stream:
    """n attempts in (ts, attempt_id) order over ``span_ms`` from T0_MS."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        req = request(
            i + 1,
            T0_MS + rng.randrange(span_ms),
            card=f"card-{rng.randrange(3)}",
            payment=f"pay-{rng.randrange(n // 2 + 1)}",
            route=rng.choice(ROUTES),
            merchant=f"m-{rng.randrange(2)}",
            amount_usd=round(rng.uniform(1, 500), 2),
        )
        out.append((req, rng.choice(ANSWERS)))
    return sorted(out, key=lambda x: (x[0].ts_ms, x[0].attempt_id))


def new_state(**kwargs: int) -> FeatureState:
    return FeatureState(
        routes=RouteTable.load(), codes=ResponseCodes.load(), utc_offset_s=OFFSETS, **kwargs
    )
