"""`create_app(config)`: the gateway's aiohttp application, with every resource it owns."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway import keys
from gateway.broker import Broker
from gateway.collections import CollectionService
from gateway.embedding import EmbeddingService
from gateway.metrics import LATENCY_BUCKETS, Metrics
from gateway.middleware import RENDERER, errors, request_context
from gateway.openai_format import PREFIX as OPENAI_PREFIX
from gateway.openai_format import render_error as render_openai_error
from gateway.routes import collections, documents, embed, openai, search, system
from gateway.rpc.server import GrpcServer
from gateway.slow_clients import body_deadline
from gateway.storage.metrics import StorageMetrics
from shared.config import Config


def create_app(cfg: Config, registry: CollectorRegistry | None = None) -> web.Application:
    """Build the application; the broker binds its socket when the app starts."""
    registry = registry or CollectorRegistry()
    app = web.Application(
        client_max_size=cfg.server.max_body_bytes,
        middlewares=[request_context, errors, body_deadline(cfg.server.body_timeout_s, registry)],
    )
    app[keys.CONFIG] = cfg
    app[keys.REGISTRY] = registry
    app[keys.METRICS] = Metrics(app[keys.REGISTRY])
    broker = Broker(cfg, app[keys.METRICS])
    app[keys.BROKER] = broker
    app[keys.EMBEDDING] = EmbeddingService(cfg, broker, app[keys.METRICS])
    storage_metrics = StorageMetrics(app[keys.REGISTRY], LATENCY_BUCKETS)
    app[keys.COLLECTIONS] = CollectionService(cfg, app[keys.EMBEDDING], storage_metrics)
    for module in (system, embed, openai, collections, documents, search):
        app.add_routes(module.routes)
    app[RENDERER] = {OPENAI_PREFIX: render_openai_error}
    # Storage first: a data directory another gateway holds stops this one before it binds anything.
    app.cleanup_ctx.append(_storage_ctx)
    app.cleanup_ctx.append(_broker_ctx)
    if cfg.server.grpc_enabled:
        # After the broker's, so it is stopped first: no call arrives for a closed broker.
        app[keys.GRPC] = GrpcServer(cfg, app[keys.EMBEDDING])
        app.cleanup_ctx.append(_grpc_ctx)
    return app


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    service = app[keys.COLLECTIONS]
    await service.start()
    yield
    await service.close()


async def _broker_ctx(app: web.Application) -> AsyncIterator[None]:
    broker = app[keys.BROKER]
    await broker.start()
    yield
    await broker.close()


async def _grpc_ctx(app: web.Application) -> AsyncIterator[None]:
    server = app[keys.GRPC]
    await server.start()
    yield
    await server.stop()
