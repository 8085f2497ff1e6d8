"""`create_app(config)`: the gateway's aiohttp application, with every resource it owns."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway import keys
from gateway.broker import Broker
from gateway.embedding import EmbeddingService
from gateway.metrics import Metrics
from gateway.middleware import errors, request_context
from gateway.routes import embed, system
from shared.config import Config


def create_app(cfg: Config, registry: CollectorRegistry | None = None) -> web.Application:
    """Build the application; the broker binds its socket when the app starts."""
    app = web.Application(
        client_max_size=cfg.server.max_body_bytes,
        middlewares=[request_context, errors],
    )
    app[keys.CONFIG] = cfg
    app[keys.REGISTRY] = registry or CollectorRegistry()
    app[keys.METRICS] = Metrics(app[keys.REGISTRY])
    broker = Broker(cfg, app[keys.METRICS])
    app[keys.BROKER] = broker
    app[keys.EMBEDDING] = EmbeddingService(cfg, broker, app[keys.METRICS])
    app.add_routes(system.routes)
    app.add_routes(embed.routes)
    app.cleanup_ctx.append(_broker_ctx)
    return app


async def _broker_ctx(app: web.Application) -> AsyncIterator[None]:
    broker = app[keys.BROKER]
    await broker.start()
    yield
    await broker.close()
