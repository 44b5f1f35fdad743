"""InferenceServicer: the Open Inference Protocol's RPCs, each a thin decode -> core -> encode."""

from __future__ import annotations

import json
import time
from typing import Any

import grpc

from forestgate import __version__
from forestgate.errors import NotFound, Unavailable
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc
from forestgate.server import codec
from forestgate.server.metrics import ServerMetrics
from forestgate.server.repository import ModelRepository
from forestgate.server.status import Context, rpc

PLATFORM = "forestgate_tl2cgen"
EXTENSIONS = ["model_repository", "schedule_policy", "parameters"]


class ServerState:
    """Readiness as the health service and ServerReady report it."""

    def __init__(self) -> None:
        self.ready = False
        self.draining = False


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The core RPCs and the repository extension; registered with `handlers()`."""

    def __init__(
        self,
        repository: ModelRepository,
        state: ServerState,
        metrics: ServerMetrics,
        *,
        max_batch_rows: int,
    ) -> None:
        self.repository = repository
        self.state = state
        self.metrics = metrics
        self.max_batch_rows = max_batch_rows

    @rpc("ServerLive", pb.ServerLiveRequest)
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @rpc("ServerReady", pb.ServerReadyRequest)
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.state.ready and not self.state.draining)

    @rpc("ModelReady", pb.ModelReadyRequest)
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        try:
            self.repository.get(request.name, request.version)
        except NotFound:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=not self.state.draining)

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
        loaded = self.repository.get(request.name, request.version)
        manifest = loaded.model.manifest
        response = pb.ModelMetadataResponse(
            name=manifest.name,
            versions=self.repository.versions(request.name),
            platform=PLATFORM,
        )
        tensor_in = response.inputs.add(
            name=codec.INPUT_NAME, datatype=codec.DATATYPE, shape=[-1, manifest.num_features]
        )
        tensor_in.parameters["feature_names"].string_param = json.dumps(manifest.feature_names)
        tensor_in.parameters["num_features"].int64_param = manifest.num_features
        tensor_out = response.outputs.add(
            name=codec.OUTPUT_NAME, datatype=codec.DATATYPE, shape=loaded.model.output_shape
        )
        tensor_out.parameters["meaning"].string_param = manifest.output.meaning
        if manifest.output.classes is not None:
            tensor_out.parameters["classes"].string_param = json.dumps(manifest.output.classes)
        calibration = loaded.model.calibration
        if calibration is not None:
            tensor_p = response.outputs.add(
                name=codec.PROBABILITY_NAME,
                datatype=codec.DATATYPE,
                shape=loaded.model.output_shape,
            )
            tensor_p.parameters["meaning"].string_param = (
                f"calibrated probability of the positive class ({calibration.method} map "
                f"applied to {codec.OUTPUT_NAME})"
            )
            tensor_p.parameters["calibration"].string_param = calibration.describe()
        response.parameters["version"].string_param = manifest.version
        response.parameters["task"].string_param = manifest.task
        response.parameters[
            "framework"
        ].string_param = f"{manifest.source.framework} {manifest.source.framework_version}"
        return response

    @rpc("ModelInfer", pb.ModelInferRequest)
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        if self.state.draining or not self.state.ready:
            raise Unavailable(
                "server is draining; retry on another instance"
                if self.state.draining
                else "server is starting: models are still loading"
            )
        loaded = self.repository.get(request.model_name, request.model_version)
        model = loaded.model
        calibrated = model.calibration is not None
        decoded = codec.decode_infer_request(
            request,
            num_features=model.num_features,
            max_rows=self.max_batch_rows,
            outputs=codec.CALIBRATED_OUTPUTS if calibrated else codec.RAW_OUTPUTS,
        )
        scores = await loaded.batcher.submit(decoded.rows, _deadline_ns(context, decoded))
        probability = model.calibrate(scores) if codec.PROBABILITY_NAME in decoded.outputs else None
        return codec.encode_infer_response(
            request, model_name=model.name, version=model.version, scores=scores,
            probability=probability, outputs=decoded.outputs,
        )  # fmt: skip

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


def _deadline_ns(context: Context, decoded: codec.DecodedRequest) -> int | None:
    """The earlier of the gRPC deadline and the OIP `timeout` parameter, as monotonic ns."""
    now = time.monotonic_ns()
    candidates = []
    remaining = context.time_remaining()
    if remaining is not None:
        candidates.append(now + int(remaining * 1e9))
    if decoded.timeout_us is not None:
        candidates.append(now + decoded.timeout_us * 1000)
    return min(candidates) if candidates else None


def handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler[Any, Any]:
    """The service's method handlers, taking raw bytes so the `rpc` boundary parses them."""
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    methods = {
        method.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=None,
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
        for method in service.methods
    }
    return grpc.method_handlers_generic_handler(service.full_name, methods)
