"""forestgate.v1.Scoring over gRPC: each RPC decodes and checks, awaits the decision core, encodes.

The decision core does the work; the `rpc` boundary (server/status.py) turns its errors into
status codes. In ScoreBatch one bad authorization gets its own error in its slot and the others
are decided as usual.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from forestgate import errors
from forestgate.protos.forestgate.v1 import scoring_pb2 as pb
from forestgate.server import score_codec, status
from forestgate.server.decisions.authorization import Authorization
from forestgate.server.decisions.core import DecisionCore
from forestgate.server.metrics import ServerMetrics
from forestgate.server.status import Context, RpcLimit, deadline_ns, rpc, status_for
from forestgate.server.tracing.record import CURRENT, RequestTrace
from forestgate.server.tracing.tracer import Tracer

SERVICE = pb.DESCRIPTOR.services_by_name["Scoring"].full_name
MAX_BATCH = 1000


class ScoringServicer:
    service_name = SERVICE

    def __init__(
        self,
        core: DecisionCore,
        metrics: ServerMetrics,
        rpc_limit: RpcLimit,
        tracer: Tracer | None = None,
    ) -> None:
        self.core = core
        self.metrics = metrics
        self.rpc_limit = rpc_limit
        self.tracer = tracer

    @rpc("Score", pb.ScoreRequest, bounded=True)
    async def Score(self, request: pb.ScoreRequest, context: Context) -> pb.ScoreResponse:
        auth = score_codec.authorization(request, self.core.routes)
        trace = CURRENT.get()
        if trace is not None and trace.recording:
            return await self._score_traced(auth, context, trace)
        decision = await self.core.score(auth, deadline_ns(context))
        return score_codec.response(decision)

    async def _score_traced(
        self, auth: Authorization, context: Context, trace: RequestTrace
    ) -> pb.ScoreResponse:
        """Score with the trace record stamped at each step, and its batches (one per model)
        linked; the response names the trace."""
        trace.decoded_ns = time.monotonic_ns()
        trace.model, trace.rows = self.core.models.approval, len(auth.routes)
        decision = await self.core.score(auth, deadline_ns(context), trace)
        trace.result_ns = time.monotonic_ns()
        response = score_codec.response(decision, _trace_id(trace))
        trace.encoded_ns = time.monotonic_ns()
        return response

    @rpc("ScoreBatch", pb.ScoreBatchRequest, bounded=True)
    async def ScoreBatch(
        self, request: pb.ScoreBatchRequest, context: Context
    ) -> pb.ScoreBatchResponse:
        if len(request.requests) > MAX_BATCH:
            raise errors.InvalidInput(f"requests: at most {MAX_BATCH} per call")
        deadline = deadline_ns(context)
        trace = CURRENT.get()
        if trace is None or not trace.recording:
            trace = None
        results = await asyncio.gather(
            *(self._one(each, i, deadline, trace) for i, each in enumerate(request.requests))
        )
        return pb.ScoreBatchResponse(results=results)

    @rpc("ReportOutcome", pb.ReportOutcomeRequest)
    async def ReportOutcome(
        self, request: pb.ReportOutcomeRequest, context: Context
    ) -> pb.ReportOutcomeResponse:
        recorded = await self.core.report(score_codec.outcome(request))
        return pb.ReportOutcomeResponse(recorded=recorded)

    async def _one(
        self, msg: pb.ScoreRequest, index: int, deadline: int | None, trace: RequestTrace | None
    ) -> pb.ScoreResult:
        try:
            auth = score_codec.authorization(msg, self.core.routes, f"requests[{index}].")
            decision = await self.core.score(auth, deadline, trace)
        except errors.ForestGateError as exc:
            code = status_for(exc)
            return pb.ScoreResult(error=pb.Error(code=code.value[0], message=str(exc)))
        return pb.ScoreResult(response=score_codec.response(decision, _trace_id(trace)))


def _trace_id(trace: RequestTrace | None) -> str:
    """The call's W3C trace id when it is sampled (so Jaeger will have it), else empty."""
    return f"{trace.trace_id:032x}" if trace is not None and trace.sampled else ""


def handlers(servicer: ScoringServicer) -> grpc.GenericRpcHandler[Any, Any]:
    return status.handlers(servicer, pb.DESCRIPTOR.services_by_name["Scoring"], pb)
