"""Typed keys for everything the aiohttp application holds (no module globals)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.broker import Broker
from gateway.embedding import EmbeddingService
from gateway.metrics import Metrics
from gateway.rpc.server import GrpcServer
from gateway.storage.service import CollectionService
from shared.config import Config

CONFIG = web.AppKey("config", Config)
REGISTRY = web.AppKey("registry", CollectorRegistry)
METRICS = web.AppKey("metrics", Metrics)
BROKER = web.AppKey("broker", Broker)
EMBEDDING = web.AppKey("embedding", EmbeddingService)
GRPC = web.AppKey("grpc", GrpcServer)
COLLECTIONS = web.AppKey("collections", CollectionService)
