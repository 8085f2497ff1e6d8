"""The embedded engine's `Catalogue`: one folder per collection under a locked data directory.

A collection is made in a staging folder and published by a rename, so a crash or a full disk never
leaves a half-made one that a restart would open. Creates and restores are serialised by one lock, so
two requests for one name give one collection and one `CollectionExists`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

from gateway.storage.collection import Collection
from gateway.storage.datadir import DataDir, refused_when_full
from gateway.storage.embedded_store import ENGINE, EmbeddedStore
from gateway.storage.engine import CollectionInfo
from gateway.storage.errors import CollectionExists, CollectionNotFound
from gateway.storage.metrics import StorageMetrics
from shared.config import StorageConfig

log = structlog.get_logger("gateway.storage")


class EmbeddedCatalogue:
    """Collections by id and by name, each an `EmbeddedStore` over its open folder."""

    engine = ENGINE

    def __init__(self, cfg: StorageConfig, metrics: StorageMetrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.data = DataDir(cfg.data_dir)
        self.data_root = self.data.root
        self.readers = ThreadPoolExecutor(max_workers=cfg.read_threads, thread_name_prefix="akidb-read")
        self._by_id: dict[str, EmbeddedStore] = {}
        self._create_lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Lock the data directory and open every collection in it (raises `StorageError`)."""
        await asyncio.to_thread(self.data.acquire)
        self.metrics.watch_free_space(self.data.root)
        try:
            for folder in self.data.existing():
                self._register(await asyncio.to_thread(self._open, folder))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Save every index that changed, close everything, release the lock."""
        for store in list(self._by_id.values()):
            col = store.collection
            await asyncio.get_running_loop().run_in_executor(col.writer, col.close, True)
            col.writer.shutdown()
        self._by_id.clear()
        await asyncio.to_thread(self.readers.shutdown)  # waits for reads in flight, off the loop
        self.data.release()

    def has_room(self) -> bool:
        return self.data.has_room()

    def _open(self, folder: Path) -> EmbeddedStore:
        col = Collection.open(folder, self.cfg.snapshot_every, self.metrics, self.cfg.filter_memory_mb * 2**20)
        return EmbeddedStore(col, self.readers, self.cfg.filter_max_candidates, self.cfg.rrf_k)

    def _register(self, store: EmbeddedStore) -> None:
        self._by_id[store.info.id] = store

    # -- lookups ------------------------------------------------------------------------------
    def find(self, ref: str) -> EmbeddedStore | None:
        store = self._by_id.get(ref)
        if store is None:
            store = next((s for s in self._by_id.values() if s.info.name == ref), None)
        return store

    def get(self, ref: str) -> EmbeddedStore:
        store = self.find(ref)
        if store is None:
            raise CollectionNotFound(f"no collection {ref!r}; GET /collections lists them", param="collection")
        return store

    def opened(self) -> list[EmbeddedStore]:
        return sorted(self._by_id.values(), key=lambda s: s.info.created_at)

    def check_name_free(self, name: str) -> None:
        if any(s.info.name == name for s in self._by_id.values()):
            raise CollectionExists(f"a collection named {name!r} already exists", param="name")

    # -- changes ------------------------------------------------------------------------------
    async def create(self, info: CollectionInfo) -> EmbeddedStore:
        async with self._create_lock:
            self.check_name_free(info.name)
            store = await asyncio.to_thread(self._create_files, info)
            self._register(store)
        return store

    def _create_files(self, info: CollectionInfo) -> EmbeddedStore:
        with refused_when_full(self.data.collections):
            staging = self.data.staging(info.id)
        try:
            Collection.initialise(staging, info)
        except BaseException:
            self.data.remove(staging)  # a full disk leaves no half-made collection behind
            raise
        folder = self.data.publish(staging, info.id)
        return self._open(folder)

    def check_restorable(self) -> None:
        return None  # the embedded engine restores any snapshot it wrote

    async def restore(self, name: str, unpack: Callable[[Path], str]) -> EmbeddedStore:
        # Verified and unpacked before taking the create lock: a large snapshot holds up no other create.
        staging, info = await asyncio.to_thread(self._unpack, name, unpack)
        try:
            async with self._create_lock:
                self.check_name_free(name)
                store = await asyncio.to_thread(self._publish, staging, info)
                self._register(store)
        except BaseException:
            await asyncio.to_thread(self.data.remove, staging)  # a no-op once published
            raise
        return store

    def _unpack(self, name: str, unpack: Callable[[Path], str]) -> tuple[Path, CollectionInfo]:
        """A staging folder holding the unpacked collection, described anew (new id and name)."""
        collection_id = "col_" + secrets.token_hex(8)
        with refused_when_full(self.data.collections):
            staging = self.data.staging(collection_id)
        try:
            with refused_when_full(staging):
                old = CollectionInfo.from_json(unpack(staging))
            info = dataclasses.replace(old, id=collection_id, name=name, created_at=time.time())
            Collection.initialise(staging, info)
        except BaseException:
            self.data.remove(staging)
            raise
        return staging, info

    def _publish(self, staging: Path, info: CollectionInfo) -> EmbeddedStore:
        folder = self.data.publish(staging, info.id)
        try:
            return self._open(folder)
        except BaseException:
            self.data.remove(folder)  # not served, so not kept: a restart would open it
            raise

    async def delete(self, ref: str) -> CollectionInfo:
        """Remove a collection and its files; later requests for it are 404."""
        store = self.get(ref)
        col = store.collection
        del self._by_id[col.info.id]
        await asyncio.get_running_loop().run_in_executor(col.writer, self._destroy, col)
        col.writer.shutdown()
        return col.info

    def _destroy(self, col: Collection) -> None:
        col.close(save=False)
        self.data.remove(col.folder)
