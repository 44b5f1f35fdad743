"""Baseline servers: minimal grpc.aio ModelInfer servers that ForestGate is measured against.

- `constant`: answers every call with a pre-serialized response and parses nothing; raw bytes in,
  raw bytes out. What gRPC Python and the event loop cost with no work at all: the ceiling.
- `naive`: what a user would write first: protobuf request, np.frombuffer, XGBoost
  `inplace_predict` (nthread=1) per request on the event loop, protobuf response.
- `refuse`: the constant server's handler, but it refuses every call with RESOURCE_EXHAUSTED:
  what refusing a call costs in gRPC Python, against serving it.
- `direct`: the naive server with ForestGate's compiled library in place of XGBoost, one engine
  call per request and no batcher, codec, metrics or status mapping: separates the cost of
  ForestGate's serving layer from the engine's.

Each runs as its own process on uvloop, binds port 0 and logs a JSON line "listening on
HOST:PORT", as `forestgate serve` does. SIGTERM stops it.
Run: .venv/bin/python bench/baseline.py constant|refuse|naive|direct [--model FILE|--bundle DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import uvloop

from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import grpc_service_pb2_grpc as pb_grpc

METHOD = "/inference.GRPCInferenceService/ModelInfer"
SERVICE = "inference.GRPCInferenceService"
Score = Callable[[npt.NDArray[np.float32]], npt.NDArray[Any]]


def response_for(request: pb.ModelInferRequest, scores: npt.NDArray[Any]) -> pb.ModelInferResponse:
    """The response ForestGate's codec builds: one raw FP32 output named output__0."""
    response = pb.ModelInferResponse(
        model_name=request.model_name, model_version="1", id=request.id
    )
    output = response.outputs.add(name="output__0", datatype="FP32")
    output.shape.extend(scores.shape)
    response.raw_output_contents.append(scores.astype(np.float32, copy=False).tobytes())
    return response


class ScoringServicer(pb_grpc.GRPCInferenceServiceServicer):
    """ModelInfer that scores each request on its own, on the event loop, with no checks."""

    def __init__(self, score: Score) -> None:
        self.score = score

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        tensor = request.inputs[0]
        x = np.frombuffer(request.raw_input_contents[0], dtype=np.float32)
        return response_for(request, self.score(x.reshape(tensor.shape[0], tensor.shape[1])))


class RefuseHandler(grpc.GenericRpcHandler):
    """Raw bytes in, RESOURCE_EXHAUSTED out: nothing parsed, nothing built."""

    def __init__(self) -> None:
        self._handler = grpc.unary_unary_rpc_method_handler(self._infer)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handler if details.method == METHOD else None

    async def _infer(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded")
        raise AssertionError("abort raises")


class ConstantHandler(grpc.GenericRpcHandler):
    """Raw bytes in, a pre-built response out; the first request of each size is parsed once
    to build a response of the right shape, so every later call costs no protobuf work."""

    def __init__(self) -> None:
        self._responses: dict[int, bytes] = {}
        self._handler = grpc.unary_unary_rpc_method_handler(self._infer)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handler if details.method == METHOD else None

    async def _infer(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        response = self._responses.get(len(request))
        if response is None:
            parsed = pb.ModelInferRequest.FromString(request)
            rows = parsed.inputs[0].shape[0] if parsed.inputs else 1
            scores = np.zeros(rows, dtype=np.float32)
            response = self._responses[len(request)] = response_for(
                parsed, scores
            ).SerializeToString()
        return response


def xgboost_score(model_file: Path) -> Score:
    import xgboost

    booster = xgboost.Booster(model_file=str(model_file))
    booster.set_param({"nthread": 1})
    return booster.inplace_predict  # type: ignore[no-any-return]


def compiled_score(bundle: Path) -> Score:
    from forestgate.engine.model import CompiledModel

    model = CompiledModel.open(bundle)
    model.self_check()
    return model.predict


async def run(kind: str, model: Path | None, bundle: Path | None, host: str) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    if kind == "constant":
        server.add_generic_rpc_handlers((ConstantHandler(),))
    elif kind == "refuse":
        server.add_generic_rpc_handlers((RefuseHandler(),))
    else:
        if kind == "naive":
            if model is None:
                raise SystemExit("baseline naive: --model FILE (an XGBoost model) is required")
            score = xgboost_score(model)
        else:
            if bundle is None:
                raise SystemExit("baseline direct: --bundle DIR (a ForestGate bundle) is required")
            score = compiled_score(bundle)
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(ScoringServicer(score), server)
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"msg": f"listening on {host}:{port} ({kind})"}), file=sys.stderr, flush=True)
    await stop.wait()
    await server.stop(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("constant", "refuse", "naive", "direct"))
    parser.add_argument("--model", type=Path, help="naive: the XGBoost model file")
    parser.add_argument("--bundle", type=Path, help="direct: the ForestGate bundle directory")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    uvloop.run(run(args.kind, args.model, args.bundle, args.host))


if __name__ == "__main__":
    main()
