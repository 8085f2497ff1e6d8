"""`create_app(config)`: the gateway's aiohttp application, with every resource it owns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.api import auth, keys
from gateway.api.key_rotation import rotating
from gateway.api.middleware import RENDERER, errors, request_context
from gateway.api.openai_format import PREFIX as OPENAI_PREFIX
from gateway.api.openai_format import render_error as render_openai_error
from gateway.api.routes import (
    collections,
    console,
    docs,
    documents,
    embed,
    openai,
    reembed,
    rerank,
    search,
    snapshots,
    system,
)
from gateway.api.rpc.server import GrpcServer
from gateway.api.slow_clients import body_deadline
from gateway.metrics import LATENCY_BUCKETS, Metrics
from gateway.services.collections import CollectionService
from gateway.services.documents import DocumentService
from gateway.services.embedding import EmbeddingService
from gateway.services.queries import SearchService
from gateway.services.reembed import ReembedJobs
from gateway.services.rerank import RerankService
from gateway.services.snapshots import SnapshotService
from gateway.storage.engines import open_catalogue
from gateway.storage.metrics import StorageMetrics
from gateway.transport.router import ZmqTransport
from shared.config import Config


def create_app(cfg: Config, registry: CollectorRegistry | None = None) -> web.Application:
    """Build the application; the transport binds its socket when the app starts."""
    registry = registry or CollectorRegistry()
    # One policy for REST and gRPC, so a re-read keys file reaches both at once.
    rules = auth.Rules.from_config(cfg.auth)
    app = web.Application(
        client_max_size=cfg.server.max_body_bytes,
        middlewares=[
            request_context,
            errors,
            *auth.middlewares(rules, lambda ref: app[keys.COLLECTIONS].name_of(ref)),
            body_deadline(cfg.server.body_timeout_s, registry),
        ],
    )
    auth.warn_if_open(cfg)
    app[keys.CONFIG] = cfg
    app[keys.AUTH] = rules
    app[keys.REGISTRY] = registry
    app[keys.METRICS] = Metrics(app[keys.REGISTRY])
    transport = ZmqTransport(cfg, app[keys.METRICS])
    app[keys.TRANSPORT] = transport
    app[keys.WORKERS] = transport.workers
    app[keys.EMBEDDING] = EmbeddingService(cfg, transport, app[keys.METRICS])
    app[keys.RERANK] = RerankService(cfg, transport, app[keys.METRICS])
    storage_metrics = StorageMetrics(app[keys.REGISTRY], LATENCY_BUCKETS)
    catalogue = open_catalogue(cfg.storage, storage_metrics)
    app[keys.COLLECTIONS] = CollectionService(cfg, app[keys.EMBEDDING], storage_metrics, catalogue)
    app[keys.DOCUMENTS] = DocumentService(app[keys.COLLECTIONS], app[keys.EMBEDDING])
    app[keys.SEARCH] = SearchService(app[keys.COLLECTIONS], app[keys.EMBEDDING], app[keys.RERANK])
    app[keys.REEMBED] = ReembedJobs(cfg, app[keys.COLLECTIONS], app[keys.EMBEDDING], app[keys.REGISTRY])
    app[keys.SNAPSHOTS] = SnapshotService(cfg, app[keys.COLLECTIONS])
    for module in (system, embed, rerank, openai, collections, snapshots, documents, search, reembed, console, docs):
        app.add_routes(module.routes)
    app[RENDERER] = {OPENAI_PREFIX: render_openai_error}
    # Storage first: a data directory another gateway holds stops this one before it binds anything.
    app.cleanup_ctx.append(_storage_ctx)
    app.cleanup_ctx.append(_transport_ctx)
    app.cleanup_ctx.append(_reembed_ctx)  # stopped first: no job writes to a closed collection
    if cfg.auth.keys_file is not None:
        app.cleanup_ctx.append(_key_rotation_ctx)
    if cfg.server.grpc_enabled:
        # After the transport's, so it is stopped first: no call arrives for a closed transport.
        app[keys.GRPC] = GrpcServer(cfg, app[keys.EMBEDDING], rules, app[keys.RERANK])
        app.cleanup_ctx.append(_grpc_ctx)
    return app


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    service = app[keys.COLLECTIONS]
    await service.start()
    await app[keys.SNAPSHOTS].start()  # the data directory is locked now
    yield
    await service.close()


async def _transport_ctx(app: web.Application) -> AsyncIterator[None]:
    transport = app[keys.TRANSPORT]
    await transport.start()
    yield
    await transport.close()


async def _reembed_ctx(app: web.Application) -> AsyncIterator[None]:
    jobs = app[keys.REEMBED]
    await jobs.resume()
    yield
    await jobs.close()


async def _key_rotation_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[keys.CONFIG]
    assert cfg.auth.keys_file is not None  # only added when it is set
    async with rotating(app[keys.AUTH], Path(cfg.auth.keys_file), cfg.heartbeat.interval_ms / 1000) as rotation:
        app[keys.KEY_ROTATION] = rotation
        yield


async def _grpc_ctx(app: web.Application) -> AsyncIterator[None]:
    server = app[keys.GRPC]
    await server.start()
    yield
    await server.stop()
