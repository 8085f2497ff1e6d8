"""Typed keys for everything the aiohttp application holds (no module globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry

from shared.config import Config

if TYPE_CHECKING:
    from gateway.broker import Broker
    from gateway.embedding import EmbeddingService
    from gateway.metrics import Metrics
    from gateway.storage.service import CollectionService

CONFIG = web.AppKey("config", Config)
REGISTRY = web.AppKey("registry", CollectorRegistry)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
BROKER: web.AppKey[Broker] = web.AppKey("broker")
EMBEDDING: web.AppKey[EmbeddingService] = web.AppKey("embedding")
COLLECTIONS: web.AppKey[CollectionService] = web.AppKey("collections")
