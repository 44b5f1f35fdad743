"""The decision state across restarts and replicas, through real servers: the memory store
saves on graceful shutdown and resumes, and two servers on one real redis-server share the
guardrail's counters and each other's decided attempts."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import random
from pathlib import Path

import grpc
import pytest

from forestgate.protos.forestgate.v1 import scoring_pb2 as pb
from forestgate.protos.forestgate.v1 import scoring_pb2_grpc as pb_grpc
from forestgate.server.decisions import state as state_module
from tests.server.authorizations import NOW, retry_request, score_request
from tests.server.conftest import _serve
from tests.trained import Trained


def _declined(stub: pb_grpc.ScoringStub, card: str) -> pb.ScoreRequest:
    first = score_request(card=card)
    stub.Score(first, timeout=5)
    report = pb.ReportOutcomeRequest(
        authorization_id=first.authorization_id, approved=False, response_code="51"
    )
    assert stub.ReportOutcome(report, timeout=5).recorded
    return first


def test_a_graceful_restart_keeps_the_decided_attempts_and_counters(
    trained: Trained, tmp_path: Path
) -> None:
    snapshot = tmp_path / "state"
    for server in _serve(trained.repository, metrics_port=-1, online_snapshot=str(snapshot)):
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.ScoringStub(channel)
            first = _declined(stub, "restart")
            pending = score_request(card="restart-pending")
            stub.Score(pending, timeout=5)
    assert sorted(p.name for p in snapshot.iterdir()) == [
        "attempts.json", "features.json", "ledgers.json",
    ]  # fmt: skip
    for server in _serve(trained.repository, metrics_port=-1, online_snapshot=str(snapshot)):
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.ScoringStub(channel)
            again = pb.ReportOutcomeRequest(
                authorization_id=first.authorization_id, approved=False, response_code="51"
            )
            assert not stub.ReportOutcome(again, timeout=5).recorded  # known, already counted
            late = pb.ReportOutcomeRequest(
                authorization_id=pending.authorization_id, approved=True, response_code="00"
            )
            assert stub.ReportOutcome(late, timeout=5).recorded  # decided before the restart
        state = server.running.decisions.state  # type: ignore[attr-defined]
        card = "pan:hashrestartaaaaaaaaaaaaaaaaaaaaa"
        anchor_ms = int((NOW + dt.timedelta(minutes=1)).timestamp() * 1000)
        counts = state.features.state.card_counts(card, anchor_ms=anchor_ms)
        assert (counts.attempts_24h, counts.declines_24h) == (1, 1)
        ledger = state.ledgers.ledger(card, "M0001")
        assert ledger is not None and ledger.newest_at == NOW


def test_two_replicas_on_one_redis_share_attempts_and_the_guardrail(
    trained: Trained, redis_url: str
) -> None:
    servers = [
        _serve(trained.repository, metrics_port=-1, online_store=redis_url) for _ in range(2)
    ]
    one, two = (next(s) for s in servers)
    try:
        with grpc.insecure_channel(one.address) as a, grpc.insecure_channel(two.address) as b:
            stub_a, stub_b = pb_grpc.ScoringStub(a), pb_grpc.ScoringStub(b)
            first = score_request(card="replicas")
            stub_a.Score(first, timeout=5)
            report = pb.ReportOutcomeRequest(
                authorization_id=first.authorization_id, approved=False, response_code="04"
            )
            assert stub_b.ReportOutcome(report, timeout=5).recorded  # decided on the other one
            assert not stub_a.ReportOutcome(report, timeout=5).recorded
            # The decline B recorded is in the shared ledger: A never advises a reattempt.
            consult = retry_request(first, code="04", at=NOW + dt.timedelta(minutes=1))
            got = stub_a.Score(consult, timeout=5)
            assert got.retry.action == pb.RETRY_ACTION_NO_RETRY and got.retry.rule == "H1"
    finally:
        for server in servers:
            server.close()


def test_an_outcome_too_late_for_the_guardrail_is_refused_whole(trained: Trained) -> None:
    for server in _serve(trained.repository, metrics_port=-1):
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.ScoringStub(channel)
            old = score_request(card="late", at=NOW - dt.timedelta(hours=1))
            stub.Score(old, timeout=5)
            _declined(stub, "late")  # at NOW
            newer = score_request(card="late", at=NOW + dt.timedelta(days=20))
            stub.Score(newer, timeout=5)
            ok = pb.ReportOutcomeRequest(
                authorization_id=newer.authorization_id, approved=True, response_code="00"
            )
            assert stub.ReportOutcome(ok, timeout=5).recorded
            stale = pb.ReportOutcomeRequest(
                authorization_id=old.authorization_id, approved=False, response_code="51"
            )
            for _ in range(2):  # refused whole: the second report is judged afresh
                with pytest.raises(grpc.RpcError) as refused:
                    stub.ReportOutcome(stale, timeout=5)
                assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
                assert "arrived too late" in (refused.value.details() or "")


def test_a_forked_worker_draws_attempt_ids_of_its_own():
    """Workers fork from the parent: without a reseed they would repeat its ids."""
    parents_next = random.Random()
    parents_next.setstate(state_module._ATTEMPT_IDS.getstate())
    expected = parents_next.getrandbits(62)  # what the parent will draw next
    reader, writer = multiprocessing.get_context("fork").Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(
        target=lambda: writer.send(state_module.DecisionState.next_attempt_id())
    )
    child.start()
    drawn = reader.recv()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert state_module.DecisionState.next_attempt_id() == expected
    assert drawn != expected
