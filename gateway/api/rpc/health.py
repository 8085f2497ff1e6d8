"""grpc.health.v1 that mirrors GET /ready: SERVING while a worker for the default model is connected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.services.embedding import EmbeddingService

# The enum's values are plain ints at run time (the .pyi's ServingStatus type is not usable here).
Status = int


class ReadinessHealth(health_pb2_grpc.HealthServicer):
    """Computed on every Check from the view of live workers, so it can never disagree with /ready.

    The reference servicer stores statuses someone must remember to set; this one has nothing
    to keep in sync. Watch polls at the heartbeat interval, the pace at which workers can change.
    """

    def __init__(self, service: EmbeddingService, services: tuple[str, ...], poll_s: float) -> None:
        self.service = service
        self.services = ("", *services)  # "" is the whole server, as the protocol defines
        self.poll_s = poll_s
        self.shutting_down = False

    def status(self, name: str) -> Status:
        """SERVING, NOT_SERVING, or SERVICE_UNKNOWN for a name this server does not offer."""
        if name not in self.services:
            return health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        if self.shutting_down or self.service.workers.live_workers(self.service.default_model) == 0:
            return health_pb2.HealthCheckResponse.NOT_SERVING
        return health_pb2.HealthCheckResponse.SERVING

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        """The status now; NOT_FOUND for an unknown service, as the protocol asks."""
        status = self.status(request.service)
        if status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN:
            known = ", ".join(repr(s) for s in self.services)
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}; known: {known}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now, then each change, until the client leaves or the server stops."""
        last: Status | None = None
        while True:
            status = self.status(request.service)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            await asyncio.sleep(self.poll_s)
