"""The grpc.aio server: built when the app starts (on its event loop), stopped when it stops."""

from __future__ import annotations

import grpc
import structlog
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway.api.auth import Rules
from gateway.api.rpc.auth import interceptors
from gateway.api.rpc.health import ReadinessHealth
from gateway.api.rpc.service import EmbeddingServicer, RerankServicer
from gateway.api.tls import server_credentials
from gateway.services.embedding import EmbeddingService
from gateway.services.rerank import RerankService
from shared.config import Config
from shared.proto import embedding_pb2 as pb
from shared.proto import embedding_pb2_grpc as pb_grpc

log = structlog.get_logger("gateway.grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EmbeddingService"].full_name  # akidb.embedding.EmbeddingService
RERANK_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RerankService"].full_name  # akidb.embedding.RerankService
# In-flight calls get this long to finish on shutdown before they are cancelled.
GRACE_S = 5.0


class GrpcServer:
    """Created with the app; `start` binds server.grpc_port, and `port` is the one it got (0 → any free)."""

    def __init__(self, cfg: Config, service: EmbeddingService, rules: Rules, rerank: RerankService) -> None:
        self.cfg = cfg
        self.service = service
        self.rerank = rerank
        self.rules = rules
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._health: ReadinessHealth | None = None

    async def start(self) -> None:
        """Bind and serve EmbeddingService, RerankService, health and reflection. Raises OSError naming the key."""
        server = grpc.aio.server(
            interceptors=interceptors(self.rules),
            # The same request-size limit as REST; replies are sized by max_texts_per_request.
            options=[("grpc.max_receive_message_length", self.cfg.server.max_body_bytes)],
        )
        poll_s = self.cfg.heartbeat.interval_ms / 1000
        self._health = ReadinessHealth(self.service, (SERVICE_NAME,), poll_s)
        pb_grpc.add_EmbeddingServiceServicer_to_server(EmbeddingServicer(self.cfg, self.service), server)
        pb_grpc.add_RerankServiceServicer_to_server(RerankServicer(self.cfg, self.rerank), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (SERVICE_NAME, RERANK_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
        address = _address(self.cfg.server.host, self.cfg.server.grpc_port)
        credentials = server_credentials(self.cfg.server)
        try:
            if credentials is None:
                self.port = server.add_insecure_port(address)
            else:
                self.port = server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {address} (server.grpc_port): {exc}") from None
        await server.start()
        self._server = server
        log.info("grpc_listening", address=address, port=self.port, tls=credentials is not None)

    async def stop(self) -> None:
        """Report NOT_SERVING, let in-flight calls finish for up to GRACE_S, then close."""
        if self._health is not None:
            self._health.shutting_down = True
        if self._server is not None:
            await self._server.stop(GRACE_S)
            self._server = None


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
