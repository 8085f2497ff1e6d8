"""`open_catalogue(cfg)`: the storage engine `storage.backend` names, behind the `Catalogue` interface."""

from __future__ import annotations

from gateway.storage.embedded_catalogue import EmbeddedCatalogue
from gateway.storage.engine import Catalogue
from gateway.storage.metrics import StorageMetrics
from shared.config import StorageConfig


def open_catalogue(cfg: StorageConfig, metrics: StorageMetrics) -> Catalogue:
    """The catalogue of the configured engine; nothing is opened until its `start()`."""
    if cfg.backend == "postgres":
        # Imported only here: the embedded engine needs neither psycopg nor a database.
        from gateway.storage.postgres.engine import PgCatalogue

        return PgCatalogue(cfg)
    return EmbeddedCatalogue(cfg, metrics)
