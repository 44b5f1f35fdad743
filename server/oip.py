"""The Open Inference Protocol (KServe V2) over gRPC: each RPC decodes, awaits the core, encodes.

`inference.GRPCInferenceService` with the six core RPCs plus Triton's repository extension and
its ModelConfig and ModelStatistics (messages built in server/triton.py).
The scoring core does the work; the `rpc` boundary (server/status.py) turns its errors into
status codes.
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from forestgate import __version__
from forestgate.errors import NotFound
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc
from forestgate.server import codec, status, triton
from forestgate.server.metrics import ServerMetrics
from forestgate.server.scoring import InferRequest, ModelInfo, ScoringCore, TensorSpec
from forestgate.server.status import Context, RpcLimit, deadline_ns, rpc
from forestgate.server.tracing.record import CURRENT, RequestTrace
from forestgate.server.tracing.tracer import Tracer

EXTENSIONS = [
    "model_repository",
    "schedule_policy",
    "parameters",
    "model_configuration",
    "statistics",
]
SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The core RPCs and the repository extension; registered with `handlers()`."""

    service_name = SERVICE

    def __init__(
        self,
        core: ScoringCore,
        metrics: ServerMetrics,
        rpc_limit: RpcLimit,
        tracer: Tracer | None = None,
    ) -> None:
        self.core = core
        self.repository = core.repository
        self.metrics = metrics
        self.rpc_limit = rpc_limit
        self.tracer = tracer

    # Probes are not traced: they would outnumber the calls worth tracing.
    @rpc("ServerLive", pb.ServerLiveRequest, traced=False)
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @rpc("ServerReady", pb.ServerReadyRequest, traced=False)
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.core.readiness.serving)

    @rpc("ModelReady", pb.ModelReadyRequest)
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        try:
            self.repository.get(request.name, request.version)
        except NotFound:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=not self.core.readiness.draining)

    @rpc("ServerMetadata", pb.ServerMetadataRequest)
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name="forestgate", version=__version__, extensions=EXTENSIONS
        )

    @rpc("ModelMetadata", pb.ModelMetadataRequest)
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        return _metadata(self.core.model_info(request.name, request.version))

    @rpc("ModelInfer", pb.ModelInferRequest, bounded=True)
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        decoded = codec.decode_infer_request(request)
        trace = CURRENT.get()
        if trace is not None:
            if trace.recording:
                return await self._infer_traced(decoded, context, trace)
            trace.model = decoded.model  # named in the span if the call fails
        result = await self.core.infer(decoded, deadline_ns(context))
        return codec.encode_infer_response(result)

    async def _infer_traced(
        self, decoded: InferRequest, context: Context, trace: RequestTrace
    ) -> pb.ModelInferResponse:
        """ModelInfer with the trace record stamped at each step (server/tracing/spans.py)."""
        trace.decoded_ns = time.monotonic_ns()
        trace.model = decoded.model
        shape = decoded.inputs[0].data.shape if decoded.inputs else ()
        trace.rows = int(shape[0]) if shape else 0
        result = await self.core.infer(decoded, deadline_ns(context), trace)
        trace.result_ns = time.monotonic_ns()
        trace.version = result.version
        response = codec.encode_infer_response(result)
        trace.encoded_ns = time.monotonic_ns()
        return response

    @rpc("RepositoryIndex", pb.RepositoryIndexRequest)
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        response = pb.RepositoryIndexResponse()
        for entry in self.repository.index():
            if request.ready and entry.state != "READY":
                continue
            response.models.add(
                name=entry.name, version=entry.version, state=entry.state, reason=entry.reason
            )
        return response

    @rpc("RepositoryModelLoad", pb.RepositoryModelLoadRequest)
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        await self.repository.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    @rpc("RepositoryModelUnload", pb.RepositoryModelUnloadRequest)
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        await self.repository.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    @rpc("ModelConfig", pb.ModelConfigRequest)
    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: Context
    ) -> pb.ModelConfigResponse:
        return triton.config_response(self.core.model_info(request.name, request.version))

    # Polled by dashboards and perf_analyzer, like /metrics: not traced.
    @rpc("ModelStatistics", pb.ModelStatisticsRequest, traced=False)
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Context
    ) -> pb.ModelStatisticsResponse:
        versions = self.core.loaded_versions(request.name, request.version)
        return triton.statistics_response(versions, self.metrics.statistics)


def _metadata(info: ModelInfo) -> pb.ModelMetadataResponse:
    response = pb.ModelMetadataResponse(
        name=info.name, versions=list(info.versions), platform=info.platform
    )
    for spec in info.inputs:
        _add_tensor(response.inputs.add(), spec)
    for spec in info.outputs:
        _add_tensor(response.outputs.add(), spec)
    for key, value in info.parameters.items():
        response.parameters[key].string_param = value
    return response


def _add_tensor(message: pb.ModelMetadataResponse.TensorMetadata, spec: TensorSpec) -> None:
    message.name = spec.name
    message.datatype = spec.datatype
    message.shape.extend(spec.shape)
    for key, value in spec.parameters.items():
        if isinstance(value, int):
            message.parameters[key].int64_param = value
        else:
            message.parameters[key].string_param = value


def handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler[Any, Any]:
    return status.handlers(servicer, pb.DESCRIPTOR.services_by_name["GRPCInferenceService"], pb)
