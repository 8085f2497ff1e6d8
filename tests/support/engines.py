"""The storage engines a collection test runs against, and how a test that holds for one of them says why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from gateway.storage.engine import Catalogue

ENGINES = ("embedded", "postgres")
# A module whose collection tests hold for every storage engine: `pytestmark = [..., BOTH_ENGINES]`. Its
# `gateway` and `start_gateway` fixtures then run once per engine (PostgreSQL on a fresh database per test).
BOTH_ENGINES = pytest.mark.parametrize("engine", ENGINES, indirect=True)


def only_on(engine: str, actual: str, why: str) -> None:
    """Skip a test that holds for one engine only, naming the engine feature it is about."""
    if actual != engine:
        pytest.skip(f"{engine} engine only: {why}")


@asynccontextmanager
async def open_engine(folder: Path, *settings: str) -> AsyncIterator[Catalogue]:
    """A started catalogue of the engine `settings` name (embedded without any), its local files in `folder`,
    opened from the config as the gateway opens it; closed afterwards."""
    from prometheus_client import CollectorRegistry

    from gateway.metrics import LATENCY_BUCKETS
    from gateway.storage.engines import open_catalogue
    from gateway.storage.metrics import StorageMetrics
    from shared.config import load_config

    cfg = load_config(None, {}, [f"storage.data_dir={folder}", *settings])
    cat = open_catalogue(cfg.storage, StorageMetrics(CollectorRegistry(), LATENCY_BUCKETS))
    await cat.start()
    try:
        yield cat
    finally:
        await cat.close()
