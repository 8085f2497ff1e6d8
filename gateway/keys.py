"""Typed keys for everything the aiohttp application holds (no module globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.embedding import EmbeddingService
from gateway.fleet import WorkerView
from gateway.metrics import Metrics
from gateway.transport import Transport
from shared.config import Config

if TYPE_CHECKING:
    from gateway.collections import CollectionService
    from gateway.rpc.server import GrpcServer

CONFIG = web.AppKey("config", Config)
REGISTRY = web.AppKey("registry", CollectorRegistry)
METRICS = web.AppKey("metrics", Metrics)
TRANSPORT = web.AppKey("transport", Transport)
WORKERS = web.AppKey("workers", WorkerView)  # read-only: what routes, health and collections see
EMBEDDING = web.AppKey("embedding", EmbeddingService)
# Typed for mypy only: importing the gRPC server here would make a cycle through the routes.
GRPC: web.AppKey[GrpcServer] = web.AppKey("grpc")
COLLECTIONS: web.AppKey[CollectionService] = web.AppKey("collections")
