"""ForestGateClient and AsyncForestGateClient: numpy in, numpy out, over one reused channel.

Both share `_Calls`, which builds every request and parses every reply; the two classes only
differ in how they await the channel. Every call has a deadline (the client's default or the
caller's; never infinite). Retries are gRPC's own, configured through the channel's service
config: only UNAVAILABLE is retried, with exponential backoff, at most `max_attempts` times,
and under a retry budget (gRPC retry throttling: retries stop while more than half of the
token bucket is spent). The caller's current OpenTelemetry span is propagated as W3C trace
context (`traceparent`) in the call metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np
import numpy.typing as npt
from grpc_health.v1 import health_pb2
from opentelemetry import propagate

from forestgate.clients.errors import ClientError, from_rpc_error
from forestgate.protos.inference import grpc_service_pb2 as pb

INPUT_NAME = "input__0"
OUTPUT_NAME = "output__0"
_SERVICE = "/inference.GRPCInferenceService/"
_HEALTH = "/grpc.health.v1.Health/Check"
Reply = TypeVar("Reply")


@dataclass(frozen=True)
class RetryPolicy:
    """UNAVAILABLE-only retries; the values become gRPC's retryPolicy and retryThrottling."""

    max_attempts: int = 3
    initial_backoff_s: float = 0.01
    max_backoff_s: float = 0.2
    backoff_multiplier: float = 2.0
    budget_tokens: int = 10
    budget_token_ratio: float = 0.1

    def service_config(self) -> str:
        if not 2 <= self.max_attempts <= 5:
            raise ValueError("max_attempts must be 2-5 (gRPC caps retries at 5 attempts)")
        return json.dumps(
            {
                "methodConfig": [
                    {
                        "name": [{"service": "inference.GRPCInferenceService"}],
                        "retryPolicy": {
                            "maxAttempts": self.max_attempts,
                            "initialBackoff": f"{self.initial_backoff_s}s",
                            "maxBackoff": f"{self.max_backoff_s}s",
                            "backoffMultiplier": self.backoff_multiplier,
                            "retryableStatusCodes": ["UNAVAILABLE"],
                        },
                    }
                ],
                "retryThrottling": {
                    "maxTokens": self.budget_tokens,
                    "tokenRatio": self.budget_token_ratio,
                },
            }
        )


@dataclass(frozen=True)
class ModelInfo:
    name: str
    versions: list[str]
    num_features: int
    feature_names: list[str] | None
    output_shape: list[int]
    task: str | None


class _Calls:
    """Requests and replies of every call, shared by the sync and async clients."""

    def __init__(self, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError(
                f"timeout_s must be > 0 (a call without a deadline can hang), got {timeout_s}"
            )
        self.timeout_s = timeout_s

    def channel_options(self, retry: RetryPolicy | None) -> list[tuple[str, Any]]:
        if retry is None:
            return [("grpc.enable_retries", 0)]
        return [("grpc.enable_retries", 1), ("grpc.service_config", retry.service_config())]

    def metadata(self, extra: Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return [*carrier.items(), *(extra or ())]

    def infer_request(
        self, model: str, rows: npt.ArrayLike, version: str, request_id: str, output: str
    ) -> pb.ModelInferRequest:
        x = np.ascontiguousarray(rows, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2:
            raise ValueError(f"rows: expected shape [n, F] or [F], got {list(x.shape)}")
        request = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
        request.inputs.add(name=INPUT_NAME, datatype="FP32", shape=list(x.shape))
        request.raw_input_contents.append(x.astype("<f4", copy=False).tobytes())
        # One named output: a calibrated model has two, and the server computes only those asked.
        request.outputs.add(name=output)
        return request

    @staticmethod
    def scores(reply: pb.ModelInferResponse) -> npt.NDArray[np.float32]:
        (output,) = reply.outputs  # exactly the one infer_request asked for
        return np.frombuffer(reply.raw_output_contents[0], dtype="<f4").reshape(list(output.shape))

    @staticmethod
    def model_info(reply: pb.ModelMetadataResponse) -> ModelInfo:
        tensor_in, tensor_out = reply.inputs[0], reply.outputs[0]
        names = tensor_in.parameters.get("feature_names")
        task = reply.parameters.get("task")
        return ModelInfo(
            name=reply.name,
            versions=list(reply.versions),
            num_features=int(tensor_in.shape[1]),
            feature_names=json.loads(names.string_param) if names is not None else None,
            output_shape=list(tensor_out.shape),
            task=task.string_param if task is not None else None,
        )


def _stubs(channel: Any) -> dict[str, Callable[..., Any]]:
    def unary(path: str, request: Any, reply: Any) -> Callable[..., Any]:
        return channel.unary_unary(  # type: ignore[no-any-return]
            path,
            request_serializer=request.SerializeToString,
            response_deserializer=reply.FromString,
        )

    return {
        "ModelInfer": unary(_SERVICE + "ModelInfer", pb.ModelInferRequest, pb.ModelInferResponse),
        "ModelMetadata": unary(
            _SERVICE + "ModelMetadata", pb.ModelMetadataRequest, pb.ModelMetadataResponse
        ),
        "ModelReady": unary(_SERVICE + "ModelReady", pb.ModelReadyRequest, pb.ModelReadyResponse),
        "ServerReady": unary(
            _SERVICE + "ServerReady", pb.ServerReadyRequest, pb.ServerReadyResponse
        ),
        "ServerLive": unary(_SERVICE + "ServerLive", pb.ServerLiveRequest, pb.ServerLiveResponse),
        "Health": unary(_HEALTH, health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse),
    }


class ForestGateClient:
    """Blocking client. Reuse one instance per target: it owns one channel.

    >>> with ForestGateClient("localhost:50051", timeout_s=0.05) as client:
    ...     p = client.infer("fraud", rows)          # float32 [n] or [n, K]
    """

    def __init__(
        self,
        target: str,
        *,
        timeout_s: float = 1.0,
        retry: RetryPolicy | None = RetryPolicy(),
        channel: grpc.Channel | None = None,
    ) -> None:
        self._calls = _Calls(timeout_s)
        self._channel = channel or grpc.insecure_channel(
            target, options=self._calls.channel_options(retry)
        )
        self._stub = _stubs(self._channel)

    def _call(self, name: str, request: Any, timeout_s: float | None, metadata: Any = None) -> Any:
        try:
            return self._stub[name](
                request,
                timeout=timeout_s or self._calls.timeout_s,
                metadata=self._calls.metadata(metadata),
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error, name) from None

    def infer(
        self,
        model: str,
        rows: npt.ArrayLike,
        *,
        version: str = "",
        request_id: str = "",
        timeout_s: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        output: str = OUTPUT_NAME,
    ) -> npt.NDArray[np.float32]:
        """Score float32 rows [n, F] (or one row [F]); returns [n] or [n, K] scores.

        ``output="probability"`` returns a calibrated binary model's calibrated probabilities
        instead of the raw model output."""
        request = self._calls.infer_request(model, rows, version, request_id, output)
        return self._calls.scores(self._call("ModelInfer", request, timeout_s, metadata))

    def model_metadata(self, model: str, *, version: str = "") -> ModelInfo:
        reply = self._call(
            "ModelMetadata", pb.ModelMetadataRequest(name=model, version=version), None
        )
        return self._calls.model_info(reply)

    def model_ready(self, model: str, *, version: str = "") -> bool:
        request = pb.ModelReadyRequest(name=model, version=version)
        return bool(self._call("ModelReady", request, None).ready)

    def server_ready(self) -> bool:
        return bool(self._call("ServerReady", pb.ServerReadyRequest(), None).ready)

    def server_live(self) -> bool:
        return bool(self._call("ServerLive", pb.ServerLiveRequest(), None).live)

    def health(self, service: str = "") -> str:
        """grpc.health.v1 status name: SERVING or NOT_SERVING (NotFound for unknown services)."""
        reply = self._call("Health", health_pb2.HealthCheckRequest(service=service), None)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ForestGateClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncForestGateClient:
    """The asyncio twin of ForestGateClient (grpc.aio); create it inside the running loop."""

    def __init__(
        self,
        target: str,
        *,
        timeout_s: float = 1.0,
        retry: RetryPolicy | None = RetryPolicy(),
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._calls = _Calls(timeout_s)
        self._channel = channel or grpc.aio.insecure_channel(
            target, options=self._calls.channel_options(retry)
        )
        self._stub = _stubs(self._channel)

    async def _call(
        self, name: str, request: Any, timeout_s: float | None, metadata: Any = None
    ) -> Any:
        try:
            return await self._stub[name](
                request,
                timeout=timeout_s or self._calls.timeout_s,
                metadata=self._calls.metadata(metadata),
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, name) from None

    async def infer(
        self,
        model: str,
        rows: npt.ArrayLike,
        *,
        version: str = "",
        request_id: str = "",
        timeout_s: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        output: str = OUTPUT_NAME,
    ) -> npt.NDArray[np.float32]:
        request = self._calls.infer_request(model, rows, version, request_id, output)
        return self._calls.scores(await self._call("ModelInfer", request, timeout_s, metadata))

    async def model_metadata(self, model: str, *, version: str = "") -> ModelInfo:
        request = pb.ModelMetadataRequest(name=model, version=version)
        return self._calls.model_info(await self._call("ModelMetadata", request, None))

    async def model_ready(self, model: str, *, version: str = "") -> bool:
        request = pb.ModelReadyRequest(name=model, version=version)
        return bool((await self._call("ModelReady", request, None)).ready)

    async def server_ready(self) -> bool:
        return bool((await self._call("ServerReady", pb.ServerReadyRequest(), None)).ready)

    async def server_live(self) -> bool:
        return bool((await self._call("ServerLive", pb.ServerLiveRequest(), None)).live)

    async def health(self, service: str = "") -> str:
        reply = await self._call("Health", health_pb2.HealthCheckRequest(service=service), None)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    async def close(self) -> None:
        await self._channel.close(None)

    async def __aenter__(self) -> AsyncForestGateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["AsyncForestGateClient", "ClientError", "ForestGateClient", "ModelInfo", "RetryPolicy"]
