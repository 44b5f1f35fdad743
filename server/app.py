"""The server's lifecycle: build every service on one port, start, drain on SIGTERM, stop.

`serve()` is the whole process: fork workers (before any gRPC object exists, as gRPC requires),
run one uvloop event loop per worker, and exit 0 after a graceful drain. A second SIGTERM or
SIGINT exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import uvloop
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool as protobuf_pool
from grpc_health.v1 import _async as health_async
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from forestgate.engine.model import CompiledModel
from forestgate.payments.guardrail import Rules
from forestgate.payments.routetable import RouteTable
from forestgate.protos.inference import grpc_service_pb2 as pb
from forestgate.protos.pool import POOL
from forestgate.server import score_api, transport
from forestgate.server.batcher import BatchObserver, Engine, MicroBatcher
from forestgate.server.decisions.core import DecisionCore
from forestgate.server.decisions.decision import DecisionConfig
from forestgate.server.decisions.models import DecisionModels
from forestgate.server.decisions.state import state_opener
from forestgate.server.decisions.value import Economics
from forestgate.server.health import Health
from forestgate.server.metrics import ServerMetrics
from forestgate.server.oip import InferenceServicer, handlers
from forestgate.server.repository import BatcherFactory, ModelRepository
from forestgate.server.score_api import ScoringServicer
from forestgate.server.scoring import Readiness, ScoringCore
from forestgate.server.settings import Settings
from forestgate.server.shedding import QueueTimeShedder
from forestgate.server.status import RpcLimit
from forestgate.server.tracing.config import trace_config
from forestgate.server.tracing.metrics import TraceCollector
from forestgate.server.tracing.provider import build_tracer
from forestgate.server.tracing.tracer import Tracer

log = logging.getLogger(__name__)

INFERENCE_SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


@dataclass
class RunningServer:
    """A started server and the parts tests and the lifecycle need to reach."""

    server: grpc.aio.Server
    port: int
    core: ScoringCore
    health: Health
    metrics: ServerMetrics
    decisions: DecisionCore
    tracer: Tracer | None = None

    @property
    def repository(self) -> ModelRepository:
        return self.core.repository

    @property
    def readiness(self) -> Readiness:
        return self.core.readiness

    async def publish_models(self) -> None:
        """Mirror the repository index into the model gauges and per-model health status."""
        self.metrics.models_loaded.clear()
        self.metrics.models_failed.clear()
        for entry in self.repository.index():
            gauge = (
                self.metrics.models_loaded if entry.state == "READY" else self.metrics.models_failed
            )
            gauge.labels(entry.name, entry.version).set(1)
        await self.health.publish()

    async def drain_and_stop(self, grace_s: float) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight ones finish, drain batchers."""
        self.readiness.draining = True
        await self.health.drain()
        # Batchers flush at once (a queue delay no longer waits for company) while gRPC refuses
        # new calls and gives the accepted ones the grace period.
        await asyncio.gather(self.server.stop(grace_s), self.repository.drain_all())
        # Every call has finished: the online state is saved (memory) or released (Redis).
        await self.decisions.close()
        if self.tracer is not None:
            # The spans of the last calls go out before the process exits.
            await asyncio.to_thread(self.tracer.queue.shutdown)


EngineWrapper = Callable[[CompiledModel], Engine]


def batcher_factory(
    settings: Settings,
    metrics: ServerMetrics,
    wrap_engine: EngineWrapper | None = None,
    tracer: Tracer | None = None,
) -> BatcherFactory:
    """How each loaded model version gets its batcher, from the settings. `wrap_engine` puts
    something between the batcher and the model (tests hold and release the engine with it);
    with a `tracer`, each batch also reaches the trace records of the calls it served."""

    def make_batcher(model: CompiledModel) -> MicroBatcher:
        shedder = None
        if settings.shed_queue_time_us:
            shedder = QueueTimeShedder(
                target_ns=settings.shed_queue_time_us * 1000,
                interval_ns=settings.shed_interval_ms * 1_000_000,
                clock=time.monotonic_ns,
            )
        observer: BatchObserver = metrics.observer(model.name, model.version)
        if tracer is not None:
            observer = tracer.observer(observer, model.name, model.version)
        batcher = MicroBatcher(
            model if wrap_engine is None else wrap_engine(model),
            name=f"{model.name}/{model.version}",
            max_batch_rows=settings.max_batch_rows,
            max_queue_delay_us=settings.max_queue_delay_us,
            max_gather_us=settings.max_gather_us,
            idle_inline_rows=settings.idle_inline_rows,
            max_queue_rows=settings.max_queue_rows,
            execution="thread" if settings.execution == "thread" else "inline",
            engine_cpus=settings.cpus,
            shedder=shedder,
            observer=observer,
        )
        metrics.queue_rows[model.name] = lambda: batcher.queue_rows
        return batcher

    return make_batcher


async def start_server(
    settings: Settings,
    metrics: ServerMetrics | None = None,
    wrap_engine: EngineWrapper | None = None,
) -> RunningServer:
    """Load the repository, then bind and start every service; returns once serving.

    `wrap_engine` wraps each model version's engine (see batcher_factory).
    """
    metrics = metrics or ServerMetrics()
    readiness = Readiness()
    options = [
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    if settings.max_pending_calls:
        # Calls gRPC core has accepted but the event loop has not yet taken: under overload
        # the backlog forms here, where the server's own bounds cannot see it. Core refuses
        # the excess without the loop; a refusal in Python costs about half of serving the
        # call (bench/results/overload_costs.md).
        options += [
            ("grpc.server.max_pending_requests", settings.max_pending_calls),
            ("grpc.server.max_pending_requests_hard_limit", settings.max_pending_calls),
        ]
    before = transport.server_ids()
    server = grpc.aio.server(options=options)
    metrics.transport_calls = transport.call_counts(before)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"cannot bind {settings.host}:{settings.port}")
    tracer = _tracer(settings, port, metrics)
    repository = ModelRepository(
        settings.model_repository, batcher_factory(settings, metrics, wrap_engine, tracer)
    )
    core = ScoringCore(repository, readiness, max_request_rows=settings.max_request_rows)
    rpc_limit = RpcLimit(settings.max_concurrent_rpcs or settings.max_queue_rows)
    servicer = InferenceServicer(core, metrics, rpc_limit, tracer)
    decisions = decision_core(settings, core)
    metrics.decision_fallbacks = lambda: decisions.fallbacks
    scoring = ScoringServicer(decisions, metrics, rpc_limit, tracer)
    server.add_generic_rpc_handlers((handlers(servicer), score_api.handlers(scoring)))
    health_servicer = health_async.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _add_reflection(server)
    health = Health(health_servicer, repository, readiness, (INFERENCE_SERVICE, score_api.SERVICE))
    # Listen first and answer NOT_SERVING while the models load and warm up, so probes and
    # load balancers see "starting" rather than a refused connection.
    await health.publish()
    await server.start()
    await repository.load_all()
    await decisions.prepare()
    running = RunningServer(server, port, core, health, metrics, decisions, tracer)
    readiness.ready = True
    await running.publish_models()
    repository.on_change = running.publish_models
    return running


def decision_core(settings: Settings, core: ScoringCore) -> DecisionCore:
    """The decision API's core over the scoring core, with the packaged route table and rules
    and the online state the settings choose."""
    routes = RouteTable.load()
    rules = Rules.load()
    economics = Economics(
        default_margin=settings.default_margin,
        fraud_rate=settings.fraud_rate,
        chargeback_fee_usd=settings.chargeback_fee_usd,
    )
    models = DecisionModels(
        core.repository, approval=settings.approval_model, retry=settings.retry_model,
        routes=routes, economics=economics,
    )  # fmt: skip
    open_state = state_opener(
        settings.online_store,
        snapshot_dir=Path(settings.online_snapshot) if settings.online_snapshot else None,
        routes=routes, codes=rules.codes, rules=rules,
        max_attempts=settings.max_remembered_attempts,
    )  # fmt: skip
    config = DecisionConfig(
        economics,
        model_share=settings.decision_model_share,
        budget_us=settings.decision_budget_us,
    )
    return DecisionCore(core, models=models, open_state=open_state, routes=routes, config=config)


def _tracer(settings: Settings, port: int, metrics: ServerMetrics) -> Tracer | None:
    """The tracer the settings and OTEL_* variables ask for (read here, at start-up), or None."""
    config = trace_config(settings, os.environ)
    log.info(config.why)
    if not config.enabled:
        return None
    tracer = build_tracer(config, settings.host, port, settings.workers)
    metrics.registry.register(TraceCollector(tracer))
    return tracer


def _add_reflection(server: grpc.aio.Server) -> None:
    """Reflection v1alpha and v1 over ForestGate's private descriptor pool.

    grpcio-reflection ships only v1alpha; v1 has the same messages and field numbers under
    another package, so the v1 method is served by the same servicer with the same codecs.
    """
    for module in (health_pb2, reflection_pb2):
        _copy_file(module.DESCRIPTOR.name)
    names = [
        INFERENCE_SERVICE,
        score_api.SERVICE,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
        REFLECTION_V1,
    ]
    servicer = reflection_aio.ReflectionServicer(names, pool=POOL)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),)
    )


def _copy_file(name: str) -> None:
    """Copy a file descriptor (and its dependencies) from protobuf's default pool into ours."""
    try:
        POOL.FindFileByName(name)
        return
    except KeyError:
        pass
    source = protobuf_pool.Default().FindFileByName(name)
    for dependency in source.dependencies:
        _copy_file(dependency.name)
    proto = descriptor_pb2.FileDescriptorProto()
    source.CopyToProto(proto)
    POOL.Add(proto)


async def _run_worker(settings: Settings, worker: int) -> int:
    metrics = ServerMetrics()
    running = await start_server(settings, metrics)
    if settings.metrics_port >= 0:
        wanted = settings.metrics_port + worker if settings.metrics_port else 0
        metrics_port = metrics.serve(settings.host, wanted)
        log.info("metrics on http://%s:%d/metrics (worker %d)", settings.host, metrics_port, worker)
    models = ", ".join(
        f"{e.name}/{e.version}" for e in running.repository.index() if e.state == "READY"
    )
    log.info(
        "listening on %s:%d (worker %d, models: %s)",
        settings.host,
        running.port,
        worker,
        models or "none",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second signal: exiting at once")
            os._exit(1)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    log.info(
        "draining: health NOT_SERVING, new calls refused, %.1f s grace", settings.grace_period_s
    )
    await running.drain_and_stop(settings.grace_period_s)
    log.info("stopped cleanly")
    return 0


def serve(settings: Settings) -> int:
    """Run the server in this process, or fork `workers` processes that share the port."""
    if settings.workers == 1:
        return uvloop.run(_run_worker(settings, 0))
    with _reserved_port(settings.host, settings.port) as port:
        return _fork_workers(dataclasses.replace(settings, port=port))


@contextlib.contextmanager
def _reserved_port(host: str, port: int) -> Iterator[int]:
    """Hold `port` (a free one when 0) with SO_REUSEPORT while the workers bind it too.

    gRPC's multiprocessing recipe: the socket is bound but never listens, so the kernel hands
    connections only to the workers' listening sockets, and port 0 resolves once for all.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        yield int(sock.getsockname()[1])


def _fork_workers(settings: Settings) -> int:
    children = []
    for worker in range(settings.workers):
        pid = os.fork()  # before any gRPC object exists in this process
        if pid == 0:
            code = 1
            try:
                code = uvloop.run(_run_worker(settings, worker))
            finally:
                os._exit(code)
        children.append(pid)

    def forward(sig: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        worst = max(worst, os.waitstatus_to_exitcode(status) & 0xFF)
    sys.stdout.flush()
    return worst
