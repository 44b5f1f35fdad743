"""Triton's statistics and config messages, built from the core's model info and figures.

ModelConfig reports a loaded version the way Triton's config.pbtxt would describe it: tensors
without the batch dimension (max_batch_size > 0), a [batch] output as dims [1] reshaped to [],
and the dynamic batching in force. ModelStatistics copies the plain counters of
server/statistics.py into Triton's messages; nothing here runs on the request path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.inference import model_config_pb2 as mc
from forestgate.server.repository import LoadedVersion
from forestgate.server.scoring import ModelInfo, TensorSpec
from forestgate.server.statistics import BatchSizeStats, Duration, VersionStatistics

# Triton's platform/backend pairs name a format and the backend that runs it
# ("onnxruntime_onnx" and "onnxruntime"); ForestGate's engine is its own backend.
BACKEND = "forestgate"
REQUEST_FIGURES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
BATCH_FIGURES = ("compute_input", "compute_infer", "compute_output")

Figures = Callable[[str, str], VersionStatistics]


def config_response(info: ModelInfo) -> pb.ModelConfigResponse:
    response = pb.ModelConfigResponse()
    config = response.config
    config.name = info.name
    config.platform = info.platform
    config.backend = BACKEND
    config.version_policy.all.SetInParent()  # every version on disk is loaded
    config.max_batch_size = info.max_batch_rows
    for spec in info.inputs:
        _tensor(config.input.add(), spec)
    for spec in info.outputs:
        _tensor(config.output.add(), spec)
    config.dynamic_batching.max_queue_delay_microseconds = info.max_queue_delay_us
    for key, value in info.parameters.items():
        config.parameters[key].string_value = value
    return response


def _tensor(message: mc.ModelInput | mc.ModelOutput, spec: TensorSpec) -> None:
    message.name = spec.name
    kind = "STRING" if spec.datatype == "BYTES" else spec.datatype  # Triton's name for BYTES
    data_type: mc.DataType = getattr(mc, f"TYPE_{kind}")
    message.data_type = data_type
    dims = spec.shape[1:]  # without the batch dimension
    if dims:
        message.dims.extend(dims)
    else:
        message.dims.append(1)
        message.reshape.SetInParent()


def statistics_response(
    versions: Iterable[LoadedVersion], figures: Figures
) -> pb.ModelStatisticsResponse:
    """One ModelStatistics per version, from `figures(name, version)`."""
    now_ns, wall_now_ns = time.monotonic_ns(), time.time_ns()
    response = pb.ModelStatisticsResponse()
    for loaded in versions:
        name, version = loaded.model.name, loaded.model.version
        stats = figures(name, version)
        message = response.model_stats.add(
            name=name,
            version=version,
            last_inference=stats.last_inference_ms(now_ns=now_ns, wall_now_ns=wall_now_ns),
            inference_count=stats.inference_count,
            execution_count=stats.execution_count,
        )
        _copy(message.inference_stats, stats, REQUEST_FIGURES)
        for size in sorted(stats.batch_sizes):
            batch = message.batch_stats.add(batch_size=size)
            _copy(batch, stats.batch_sizes[size], BATCH_FIGURES)
    return response


def _copy(
    message: pb.InferStatistics | pb.InferBatchStatistics,
    source: VersionStatistics | BatchSizeStats,
    names: tuple[str, ...],
) -> None:
    for name in names:
        duration: Duration = getattr(source, name)
        target: pb.StatisticDuration = getattr(message, name)
        target.count = duration.count
        target.ns = duration.ns
