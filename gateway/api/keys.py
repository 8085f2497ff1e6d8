"""Typed keys for everything the aiohttp application holds (no module globals)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.api.auth import Rules
from gateway.api.key_rotation import KeyRotation
from gateway.api.rpc.server import GrpcServer
from gateway.dispatch.fleet import WorkerView
from gateway.metrics import Metrics
from gateway.services.collections import CollectionService
from gateway.services.documents import DocumentService
from gateway.services.embedding import EmbeddingService
from gateway.services.queries import SearchService
from gateway.services.reembed import ReembedJobs
from gateway.services.rerank import RerankService
from gateway.services.snapshots import SnapshotService
from gateway.transport.router import ZmqTransport
from shared.config import Config

CONFIG = web.AppKey("config", Config)
AUTH = web.AppKey("auth", Rules)  # the API keys in force: replaced when auth.keys_file changes
KEY_ROTATION = web.AppKey("key_rotation", KeyRotation)  # only while auth.keys_file is set and the app runs
REGISTRY = web.AppKey("registry", CollectorRegistry)
METRICS = web.AppKey("metrics", Metrics)
TRANSPORT = web.AppKey("transport", ZmqTransport)
WORKERS = web.AppKey("workers", WorkerView)  # read-only: what routes, health and collections see
EMBEDDING = web.AppKey("embedding", EmbeddingService)
RERANK = web.AppKey("rerank", RerankService)
GRPC = web.AppKey("grpc", GrpcServer)
COLLECTIONS = web.AppKey("collections", CollectionService)
DOCUMENTS = web.AppKey("documents", DocumentService)
SEARCH = web.AppKey("search", SearchService)
REEMBED = web.AppKey("reembed", ReembedJobs)
SNAPSHOTS = web.AppKey("snapshots", SnapshotService)
