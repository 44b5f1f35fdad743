"""Health: grpc.health.v1 statuses for the server, the inference service and each model name.

A model name is SERVING when a request that names no version would reach a loaded version, so
a broken newer version never hides a serving older one. Everything is NOT_SERVING while models
load and once draining starts.
"""

from __future__ import annotations

from grpc_health.v1 import _async as health_async
from grpc_health.v1 import health_pb2

from forestgate.server.repository import ModelRepository
from forestgate.server.scoring import Readiness

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Health:
    """Mirrors readiness and the repository into a grpc.health.v1 servicer."""

    def __init__(
        self,
        servicer: health_async.HealthServicer,
        repository: ModelRepository,
        readiness: Readiness,
        services: tuple[str, ...],
    ) -> None:
        self.servicer = servicer
        self.repository = repository
        self.readiness = readiness
        # "" (the whole server) and each gRPC service name that serves models.
        self.services = ("", *services)

    async def publish(self) -> None:
        """Set every status from the current readiness and loaded models."""
        serving = self.readiness.serving
        for service in self.services:
            await self.servicer.set(service, SERVING if serving else NOT_SERVING)
        names = set(self.repository.on_disk()) | {e.name for e in self.repository.index()}
        for name in sorted(names):
            ready = serving and self.repository.serves(name)
            await self.servicer.set(name, SERVING if ready else NOT_SERVING)

    async def drain(self) -> None:
        """NOT_SERVING everywhere, for good: watchers see it before calls are refused."""
        await self.servicer.enter_graceful_shutdown()
