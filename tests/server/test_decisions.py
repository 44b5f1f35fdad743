"""The decision API on a real server with the demo models `forestgate train` built: Score's
probabilities are the compiled models' on the features the payments core defines, the chosen route
has the best expected net value, retry advice never breaks a network rule, outcomes update the
online state, and the incumbent answers (and is counted) when a model cannot."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton

from forestgate.engine.model import CompiledModel
from forestgate.protos.forestgate.v1 import scoring_pb2 as pb
from forestgate.protos.forestgate.v1 import scoring_pb2_grpc as pb_grpc
from forestgate.server.decisions.core import DecisionCore
from forestgate.server.decisions.features import feature_request
from forestgate.server.score_codec import authorization
from tests.otlp import TraceReceiver
from tests.server.authorizations import ALL_ROUTES, NOW, retry_request, score_request
from tests.server.conftest import LiveServer, _serve
from tests.server.test_tracing import by_name
from tests.trained import FORESTGATE, Trained

REPO = Path(__file__).resolve().parents[2]
GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"


@pytest.fixture(scope="module")
def served(trained: Trained) -> Iterator[LiveServer]:
    yield from _serve(trained.repository, metrics_port=-1)


@pytest.fixture(scope="module")
def stub(served: LiveServer) -> Iterator[pb_grpc.ScoringStub]:
    with grpc.insecure_channel(served.address) as channel:
        yield pb_grpc.ScoringStub(channel)


def _core(served: LiveServer) -> DecisionCore:
    return served.running.decisions  # type: ignore[attr-defined,no-any-return]


def _model(served: LiveServer, name: str) -> CompiledModel:
    return _core(served).scoring.repository.get(name).model


def test_probabilities_are_the_models_on_the_payments_features(
    served: LiveServer, stub: pb_grpc.ScoringStub
) -> None:
    msg = score_request(routes=ALL_ROUTES, card="probe")
    core = _core(served)
    auth = authorization(msg, core.routes)
    world = core.models.reference_data()
    request = feature_request(auth, world, attempt_id=10**9)
    rows = np.stack([core.state.features.state.approval(request, r) for r in ALL_ROUTES])
    p = _model(served, "approval").predict_calibrated(rows)
    expected = dict(zip(ALL_ROUTES, p, strict=True))
    got = stub.Score(msg, timeout=5)
    assert {r.route_id: r.p_approve for r in got.routes} == pytest.approx(expected, abs=1e-6)
    assert [(m.name, m.version) for m in got.models] == [("approval", "1")]
    assert not got.fallback and got.trace_id == ""


def test_the_chosen_route_has_the_best_expected_net_value(stub: pb_grpc.ScoringStub) -> None:
    got = stub.Score(score_request(routes=ALL_ROUTES), timeout=5)
    values = [r.expected_net_value_minor for r in got.routes]
    assert values == sorted(values, reverse=True)
    assert got.chosen_route == got.routes[0].route_id
    for r in got.routes:
        margin = round(4_999 * 0.3) - r.approval_cost_minor - r.expected_fraud_loss_minor
        assert r.expected_net_value_minor == round(r.p_approve * margin - r.attempt_cost_minor)
        assert r.expected_fraud_loss_minor == round(0.001 * (4_999 + 1_500))


def test_an_outcome_updates_the_cards_velocity_and_is_recorded_once(
    served: LiveServer, stub: pb_grpc.ScoringStub
) -> None:
    core = _core(served)
    first = score_request(card="velocity")
    decided = stub.Score(first, timeout=5)
    report = pb.ReportOutcomeRequest(
        authorization_id=first.authorization_id, approved=False, response_code="51"
    )
    assert stub.ReportOutcome(report, timeout=5).recorded
    assert not stub.ReportOutcome(report, timeout=5).recorded  # a repeat is ignored
    later = score_request(card="velocity", at=NOW + dt.timedelta(minutes=5))
    request = feature_request(authorization(later, core.routes), core.models.reference_data(),
                              attempt_id=10**9 + 1)  # fmt: skip
    features = dict(zip(_model(served, "approval").manifest.feature_names,
                        core.state.features.state.approval(request), strict=True))  # fmt: skip
    assert features["card_attempts_24h"] == 1 and features["card_declines_24h"] == 1
    ledger = core.state.ledgers.ledger(authorization(first, core.routes).card.card_key, "M0001")
    assert ledger is not None and ledger.newest_at == NOW
    seen = _run_on(served, core.state.seen(first.authorization_id))
    assert (seen.attempt.route, seen.attempt.response_code) == (decided.chosen_route, "51")


def test_an_outcome_for_an_unknown_id_is_not_found(stub: pb_grpc.ScoringStub) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub.ReportOutcome(
            pb.ReportOutcomeRequest(authorization_id="never-scored", response_code="00"), timeout=5
        )
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    assert "authorization_id: 'never-scored'" in (refused.value.details() or "")


@pytest.mark.parametrize(
    ("brand", "code", "advice", "expected"),
    [
        (pb.BRAND_VISA, "04", "", (pb.RETRY_ACTION_NO_RETRY, "H1")),  # Visa category 1
        (pb.BRAND_MASTERCARD, "05", "03", (pb.RETRY_ACTION_NO_RETRY, "H4")),  # MAC 03: never
        (pb.BRAND_MASTERCARD, "54", "01", (pb.RETRY_ACTION_UPDATE_CREDENTIALS, "H3")),
        (pb.BRAND_VISA, "1A", "", (pb.RETRY_ACTION_CIT_3DS, "")),  # SCA, customer in session
    ],
)
def test_retry_advice_follows_the_network_rules(
    stub: pb_grpc.ScoringStub, brand: int, code: str, advice: str, expected: tuple[int, str]
) -> None:
    action, rule = expected
    first = score_request(routes=("A-US", "D-XB"), card=f"rules-{code}-{advice}")
    first.card.brand = brand  # type: ignore[assignment]
    stub.Score(first, timeout=5)
    got = stub.Score(retry_request(first, code=code, advice_code=advice, brand=brand), timeout=5)
    assert got.retry.action == action, got.retry
    if rule:
        assert got.retry.rule == rule, got.retry


def test_an_sca_decline_without_the_customer_is_not_retried(stub: pb_grpc.ScoringStub) -> None:
    first = score_request(card="sca-away")
    stub.Score(first, timeout=5)
    consult = retry_request(first, code="1A")
    consult.customer_in_session = False
    got = stub.Score(consult, timeout=5)
    assert got.retry.action == pb.RETRY_ACTION_NO_RETRY and got.retry.rule == "H7"


def test_an_insufficient_funds_decline_gets_an_allowed_retry_scored_by_both_models(
    stub: pb_grpc.ScoringStub,
) -> None:
    first = score_request(card="nsf")
    stub.Score(first, timeout=5)
    got = stub.Score(retry_request(first, code="51"), timeout=5)
    assert got.retry.action in (pb.RETRY_ACTION_RETRY, pb.RETRY_ACTION_CASCADE)
    assert got.retry.earliest_time.ToDatetime(dt.UTC) >= NOW
    assert 0 < got.retry.p_approve < 1 and got.retry.expected_net_value_minor > 0
    assert [(m.name, m.version) for m in got.models] == [("approval", "1"), ("retry", "1")]


def test_a_score_batch_answers_each_slot_and_refuses_only_the_bad_one(
    stub: pb_grpc.ScoringStub,
) -> None:
    bad = score_request()
    bad.amount.currency = "XYZ"
    batch = pb.ScoreBatchRequest(requests=[score_request(), bad, score_request()])
    got = stub.ScoreBatch(batch, timeout=5)
    assert [r.WhichOneof("result") for r in got.results] == ["response", "error", "response"]
    assert got.results[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert got.results[1].error.message.startswith("requests[1].amount.currency: unknown")
    assert got.results[0].response.authorization_id == batch.requests[0].authorization_id


def test_a_bad_field_is_invalid_argument_naming_it(stub: pb_grpc.ScoringStub) -> None:
    msg = score_request()
    msg.card.pan_hash = "4111111111111111"
    with pytest.raises(grpc.RpcError) as refused:
        stub.Score(msg, timeout=5)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("card.pan_hash: looks like a card number")
    assert "4111111111111111" not in (refused.value.details() or "")


def test_the_incumbent_answers_when_the_models_budget_is_gone(trained: Trained) -> None:
    # A budget of 1 us has passed before the rows reach the batcher, which refuses them.
    for server in _serve(trained.repository, metrics_port=-1, decision_budget_us=1):
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.ScoringStub(channel)
            got = stub.Score(score_request(routes=("D-XB", "A-US")), timeout=None)
            first = score_request(card="fallback-retry")
            stub.Score(first)
            consult = stub.Score(retry_request(first, code="51"))
        assert got.fallback and got.fallback_reason == "deadline" and not got.models
        assert got.chosen_route == "A-US"  # local before cross-border, as the incumbent does
        assert all(np.isnan(r.p_approve) for r in got.routes)
        assert consult.retry.action == pb.RETRY_ACTION_RETRY  # fixed schedule: a day later
        assert consult.retry.earliest_time.ToDatetime(dt.UTC) == NOW + dt.timedelta(days=1)
        assert _core(server).fallbacks == {"deadline": 3}


def test_the_incumbent_answers_while_the_approval_model_is_unloaded(trained: Trained) -> None:
    for server in _serve(trained.repository, metrics_port=-1):
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.ScoringStub(channel)
            assert not stub.Score(score_request(), timeout=5).fallback
            client = triton.InferenceServerClient(server.address)
            client.unload_model("approval")
            got = stub.Score(score_request(), timeout=5)
            client.load_model("approval")
            back = stub.Score(score_request(), timeout=5)
        assert got.fallback and got.fallback_reason == "model_not_loaded"
        assert not back.fallback
        text = _metrics_text(server)
        assert 'forestgate_decision_fallbacks_total{reason="model_not_loaded"} 1.0' in text


def _run_on(server: LiveServer, coroutine: Any) -> Any:
    """Await on the server's own loop (the state belongs to it)."""
    return asyncio.run_coroutine_threadsafe(coroutine, server.loop).result(10)


def _metrics_text(server: LiveServer) -> str:
    from prometheus_client import generate_latest

    return generate_latest(server.running.metrics.registry).decode()  # type: ignore[attr-defined]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_grpcurl_lists_the_service_and_scores_the_readmes_request(served: LiveServer) -> None:
    listed = _run(GRPCURL, "-plaintext", served.address, "list")
    assert listed.returncode == 0, listed.stderr
    assert "forestgate.v1.Scoring" in listed.stdout.split()
    body = (REPO / "docs" / "examples" / "score.json").read_text()
    done = _run(GRPCURL, "-plaintext", "-d", body, served.address, "forestgate.v1.Scoring/Score")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["authorization_id"] == "auth-0001"
    assert len(answer["routes"]) == 6 and answer["chosen_route"] == answer["routes"][0]["route_id"]


def test_the_readmes_python_example_scores_and_reports(served: LiveServer) -> None:
    done = _run(sys.executable, str(REPO / "docs" / "examples" / "score.py"), served.address)
    assert done.returncode == 0, done.stderr
    assert "fallback: False" in done.stdout and "outcome recorded: True" in done.stdout


@pytest.mark.parametrize(
    "config", sorted((REPO / "bench" / "ghz").glob("score-*.json")), ids=lambda p: p.name
)
def test_forestgate_load_drives_score_from_the_bench_configs(
    served: LiveServer, config: Path
) -> None:
    done = _run(
        FORESTGATE, "load", "--config", str(config), "-n", "40", "-O", "json", served.address
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["count"] == 40 and report["statusCodeDistribution"] == {"OK": 40}
    assert report["options"]["call"] == "forestgate.v1.Scoring/Score"


def test_a_sampled_score_names_its_trace_and_links_both_models_batches(
    trained: Trained, receiver: TraceReceiver
) -> None:
    port = receiver.start_grpc()
    endpoint = f"http://127.0.0.1:{port}"
    for server in _serve(trained.repository, metrics_port=-1, trace_endpoint=endpoint,
                         trace_sample_ratio=1.0):  # fmt: skip
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.ScoringStub(channel)
            first = score_request(card="traced")
            stub.Score(first, timeout=5)
            got = stub.Score(retry_request(first, code="51"), timeout=5)
        server.running.tracer.queue.flush()  # type: ignore[attr-defined]
        spans = receiver.wait_for(lambda s: len(by_name(s, "forestgate.v1.Scoring/Score")) == 2)
    (call,) = [s for s in by_name(spans, "forestgate.v1.Scoring/Score")
               if s.trace_id == got.trace_id]  # fmt: skip
    children = sorted(s.name for s in spans if s.parent_span_id == call.span_id)
    assert children == ["decode", "encode", "infer", "infer", "queue", "queue"]
    batches = {s.span_id: s for s in by_name(spans, "engine.batch")}
    infer_links = [
        link[1] for s in spans if s.parent_span_id == call.span_id and s.name == "infer"
        for link in s.links
    ]  # fmt: skip
    assert len(infer_links) == 2 and all(span_id in batches for span_id in infer_links)
