"""The collection service: which collections exist, tied to the models that embed for them.

It describes a new collection (its dimension from the model unless given), asks the storage engine's
`Catalogue` to make, find, delete or restore it, and keeps the per-collection document gauge. It knows
the engine only through `gateway.storage.engine`; documents and search are `documents.py` and `queries.py`.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from gateway.errors import ModelNotFound
from gateway.services.collection_inputs import CollectionSpec
from gateway.services.deferred import DeferredWrites, Write
from gateway.services.embedding import EmbeddingService
from gateway.storage.engine import Catalogue, CollectionInfo, CollectionStore
from gateway.storage.errors import CollectionNotFound, DimensionMismatch
from gateway.storage.index import IndexParams
from gateway.storage.metrics import StorageMetrics
from shared import models
from shared.config import Config

log = structlog.get_logger("gateway.storage")


class CollectionService:
    """Collections by id and by name, whichever storage engine holds them."""

    def __init__(self, cfg: Config, embedding: EmbeddingService, metrics: StorageMetrics, catalogue: Catalogue) -> None:
        self.cfg = cfg.storage
        self.default_normalize = cfg.embedding.normalize
        self.embedding = embedding
        self.metrics = metrics
        self.catalogue = catalogue
        # Start-up writes a full disk refused (a collection's full-text index, its writes, a re-embedding
        # job), run once the disk has room; an engine with no local collection files never defers any.
        self.deferred = DeferredWrites(catalogue.data_root, catalogue.has_room, metrics)

    @property
    def engine(self) -> str:
        return self.catalogue.engine

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the catalogue (raises `StorageError`: a data directory in use, a database unreachable)."""
        await self.catalogue.start()
        for store in self.catalogue.opened():
            await self._register(store)
        await self.deferred.check()
        self.deferred.start()

    async def close(self) -> None:
        await self.deferred.close()
        await self.catalogue.close()

    async def _register(self, store: CollectionStore) -> None:
        await self.count_documents(store)
        # What the disk had no room for when the collection opened, in the order it can be done.
        for name, write in store.waiting_for_space():
            self.deferred.wait_for_space(name, self._unless_deleted(store, write))

    @staticmethod
    def _unless_deleted(store: CollectionStore, write: Write) -> Write:
        """`write`, refused with `CollectionNotFound` once the collection was deleted (it then stops waiting)."""

        async def run() -> object:
            if store.closed:
                raise CollectionNotFound(f"collection {store.info.name!r} was deleted", param="collection")
            return await write()

        return run

    async def count_documents(self, store: CollectionStore) -> int:
        """The collection's document count, set on its gauge on the way."""
        count = store.count_now()
        if count is None:
            count = await store.count()
        self.metrics.documents.labels(store.info.name).set(count)
        return count

    # -- collections --------------------------------------------------------------------------
    def get(self, ref: str) -> CollectionStore:
        """A collection by id or by name; `CollectionNotFound` otherwise."""
        return self.catalogue.get(ref)

    def name_of(self, ref: str) -> str:
        """The name of the collection `ref` names: its own name when it is a collection's id, else `ref` itself
        (a name, or one no collection has: what a key's patterns are checked against either way)."""
        store = self.catalogue.find(ref)
        return ref if store is None or store.info.id != ref else store.info.name

    def opened(self) -> Sequence[CollectionStore]:
        """Every collection, oldest first."""
        return self.catalogue.opened()

    def listed(self) -> Sequence[CollectionStore]:
        """Every collection, oldest first (as GET /collections lists them)."""
        return self.catalogue.opened()

    async def create(self, spec: CollectionSpec) -> CollectionStore:
        """Make a collection; its dimension comes from the model unless given (and then must agree)."""
        # Shielded: a client that disconnects (its handler is cancelled) must not leave a collection
        # stored that the service does not know, which a retry would then create a second time.
        return await asyncio.shield(self._create(spec))

    async def _create(self, spec: CollectionSpec) -> CollectionStore:
        self.check_name_free(spec.name)
        info = self._describe_new(spec)
        store = await self.catalogue.create(info)
        await self._register(store)
        log.info("collection_created", collection=info.name, id=info.id, dimension=info.dimension, model=info.model)
        return store

    def _describe_new(self, spec: CollectionSpec) -> CollectionInfo:
        model, dimension, pooling = self._model_facts(spec)
        return CollectionInfo(
            id="col_" + secrets.token_hex(8),
            name=spec.name,
            dimension=dimension,
            metric=spec.metric,
            model=model,
            pooling=spec.pooling or pooling,
            normalize=self.default_normalize if spec.normalize is None else spec.normalize,
            index=IndexParams(
                connectivity=spec.connectivity or self.cfg.connectivity,
                expansion_add=spec.expansion_add or self.cfg.expansion_add,
                expansion_search=spec.expansion_search or self.cfg.expansion_search,
                dtype=self.cfg.index_dtype,
            ),
            created_at=time.time(),
        )

    def _model_facts(self, spec: CollectionSpec) -> tuple[str, int, str | None]:
        """(canonical model, dimension, its pooling): from a connected worker, else the registry."""
        name = models.canonical(spec.model or self.embedding.default_model)
        info = self.embedding.workers.model_info(name)
        if info is not None:
            if spec.dimension is not None and spec.dimension != info.dimension:
                raise DimensionMismatch(
                    f"dimension {spec.dimension} does not match model {info.name!r}, which makes "
                    f"{info.dimension}-dimensional vectors; leave dimension out to use the model's",
                    param="dimension",
                )
            return info.name, info.dimension, info.pooling
        if spec.dimension is None:
            self.embedding.resolve_model(name)  # raises: no worker to ask, or an unknown model
        known = models.find(name)
        if known is None:
            raise ModelNotFound(f"model {name!r} is not known here and no worker serves it", param="model")
        # No worker has announced the model yet: trust the given dimension; embeddings are checked later.
        return known.name, int(spec.dimension or 0), known.pooling

    async def restore(self, name: str, unpack: Callable[[Path], str]) -> CollectionStore:
        """Make collection `name` from files `unpack` puts in its empty folder (it returns their description,
        as JSON). Whatever `unpack` raises, nothing is created."""
        return await asyncio.shield(self._restore(name, unpack))

    async def _restore(self, name: str, unpack: Callable[[Path], str]) -> CollectionStore:
        store = await self.catalogue.restore(name, unpack)
        await self._register(store)
        log.info("collection_restored", collection=name, id=store.info.id, documents=await store.count())
        return store

    def check_name_free(self, name: str) -> None:
        """`CollectionExists` if a collection has this name."""
        self.catalogue.check_name_free(name)

    async def delete(self, ref: str) -> str:
        """Remove a collection and its documents; later requests for it are 404."""
        info = await self.catalogue.delete(ref)
        self.metrics.documents.remove(info.name)
        log.info("collection_deleted", collection=info.name, id=info.id)
        return info.id
