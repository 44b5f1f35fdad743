"""Score one authorization and report its outcome, with the generated forestgate.v1 stubs.

python docs/examples/score.py localhost:50051
"""

import datetime as dt
import sys

import grpc

from forestgate.protos.forestgate.v1 import scoring_pb2 as pb
from forestgate.protos.forestgate.v1 import scoring_pb2_grpc

target = sys.argv[1] if len(sys.argv) > 1 else "localhost:50051"
with grpc.insecure_channel(target) as channel:
    scoring = scoring_pb2_grpc.ScoringStub(channel)
    request = pb.ScoreRequest(
        authorization_id="auth-0002",
        payment_id="pay-0002",
        time=dt.datetime(2026, 12, 3, 15, 0, tzinfo=dt.UTC),  # unset means now
        amount=pb.Money(amount_minor=4999, currency="USD"),
        card=pb.Card(
            bin="41111111",
            pan_hash="k3u2tq7rj5mzw4xv0a9c1b8d6e",  # a keyed hash, never the PAN
            expiry_year=2029,
            expiry_month=6,
            brand=pb.BRAND_VISA,
            funding=pb.FUNDING_DEBIT,
            issuer_country="US",
        ),
        merchant=pb.Merchant(id="M0001", country="US", mcc=5411),
        channel=pb.CHANNEL_ECOMMERCE,
        initiator=pb.INITIATOR_CIT,
        customer_in_session=True,
        candidate_routes=["A-US", "D-XB", "E-US-DEBIT"],
    )
    decision = scoring.Score(request, timeout=0.05)  # a 50 ms deadline
    print("route:", decision.chosen_route, "fallback:", decision.fallback)
    for route in decision.routes:
        print(f"  {route.route_id:11} p={route.p_approve:.3f} net={route.expected_net_value_minor}")
    outcome = pb.ReportOutcomeRequest(
        authorization_id="auth-0002", approved=True, response_code="00",
        route_id=decision.chosen_route,
    )  # fmt: skip
    print("outcome recorded:", scoring.ReportOutcome(outcome, timeout=1).recorded)
