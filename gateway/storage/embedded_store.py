"""The embedded engine's `CollectionStore`: one open `Collection`, its writer thread and the shared reader pool.

Changes run on the collection's own writer thread (serialised, so the index follows the database in
commit order), reads on the catalogue's reader pool, and a small unfiltered search may answer on the
event loop itself (`Collection.search_now`: cheaper than a thread hop). Filter trees are rendered to
SQLite here, once per call: the engine's filter-match memory is keyed by the rendered clause.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from gateway.storage import reembed as jobs
from gateway.storage.backup import BackupInfo, Backups, Source, copy_database
from gateway.storage.collection import Collection
from gateway.storage.datadir import refused_when_full
from gateway.storage.db import DB_FILE
from gateway.storage.engine import CollectionInfo, Hit, JobRecord, NewDocument, Pending, StoredDocument, TextQuery
from gateway.storage.errors import CollectionNotFound
from gateway.storage.filters import Filter, Where, sqlite_filter
from gateway.storage.index import VectorIndex

T = TypeVar("T")
ENGINE = "embedded"


def snapshot_source(col: Collection, work: Path) -> Source:
    """A collection's database copied into a snapshot's work folder, with its index as of a commit the copy holds."""
    with col.backup_source() as (index_bytes, last_key, last_removal):
        documents = copy_database(col.store.path, work / DB_FILE)
    return Source(documents, f"index-{last_key}-{last_removal}.usearch", index_bytes)


def _rendered(where: Where | None) -> Filter | None:
    return None if where is None else sqlite_filter(where)


class EmbeddedStore:
    """`CollectionStore` over a `Collection` opened from its folder."""

    engine = ENGINE

    def __init__(self, col: Collection, readers: ThreadPoolExecutor, max_candidates: int, rrf_k: int) -> None:
        self.collection = col
        self.readers = readers
        self.max_candidates = max_candidates
        self.rrf_k = rrf_k
        self._reembedding: EmbeddedReembedding | None = None

    @property
    def info(self) -> CollectionInfo:
        return self.collection.info

    @property
    def closed(self) -> bool:
        return self.collection.closed

    # -- threads ------------------------------------------------------------------------------
    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a change on the collection's writer thread (one at a time, in order)."""
        col = self.collection
        try:
            return await asyncio.get_running_loop().run_in_executor(col.writer, fn, *args)
        except RuntimeError:  # the writer was shut down: the collection was deleted meanwhile
            if col.closed:
                raise CollectionNotFound(f"collection {col.info.name!r} was deleted", param="collection") from None
            raise

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.readers, fn, *args)

    # -- writes -------------------------------------------------------------------------------
    async def upsert(self, docs: list[NewDocument], embedded_for: CollectionInfo | None = None) -> None:
        await self.write(self.collection.upsert, docs, embedded_for)

    async def delete(self, doc_id: str) -> bool:
        return await self.write(self.collection.delete, doc_id)

    # -- reads --------------------------------------------------------------------------------
    async def count(self) -> int:
        if self.collection.closed:
            raise CollectionNotFound(f"collection {self.info.name!r} was deleted", param="collection")
        return len(self.collection.index)

    def count_now(self) -> int | None:
        return len(self.collection.index)

    async def get(self, doc_id: str, with_vector: bool) -> StoredDocument | None:
        return await self.read(self.collection.get, doc_id, with_vector)

    async def page(self, after_key: int, limit: int, with_vector: bool) -> tuple[list[StoredDocument], int]:
        return await self.read(self.collection.page, after_key, limit, with_vector)

    # -- search -------------------------------------------------------------------------------
    def search_inline(
        self, vector: np.ndarray, k: int, where: Where | None, include: frozenset[str]
    ) -> list[Hit] | None:
        return self.collection.search_now(vector, k, _rendered(where), include)

    async def search(self, vector: np.ndarray, k: int, where: Where | None, include: frozenset[str]) -> list[Hit]:
        flt = _rendered(where)
        return await self.read(self.collection.search, vector, k, flt, self.max_candidates, "vector" in include)

    async def keyword_search(self, text: TextQuery, k: int, where: Where | None, include: frozenset[str]) -> list[Hit]:
        return await self.read(self.collection.keyword_search, text, k, _rendered(where), include)

    async def keyword_ranking(self, text: TextQuery, k: int, where: Where | None) -> list[tuple[int, float]]:
        return await self.read(self.collection.keyword_ranking, text, k, _rendered(where))

    async def fuse(
        self,
        vector: np.ndarray,
        ranking: list[tuple[int, float]],
        k: int,
        where: Where | None,
        alpha: float,
        include: frozenset[str],
    ) -> list[Hit]:
        return await self.read(self._fuse, vector, ranking, k, _rendered(where), alpha, include)

    async def hybrid_search(
        self, vector: np.ndarray, text: TextQuery, k: int, where: Where | None, alpha: float, include: frozenset[str]
    ) -> list[Hit]:
        """Both rankings and their fusion in one reader call."""
        flt = _rendered(where)

        def both() -> list[Hit]:
            ranking = self.collection.keyword_ranking(text, k, flt)
            return self._fuse(vector, ranking, k, flt, alpha, include)

        return await self.read(both)

    def _fuse(
        self,
        vector: np.ndarray,
        ranking: list[tuple[int, float]],
        k: int,
        flt: Filter | None,
        alpha: float,
        include: frozenset[str],
    ) -> list[Hit]:
        return self.collection.fuse(
            vector,
            ranking,
            k,
            flt,
            alpha=alpha,
            rrf_k=self.rrf_k,
            max_candidates=self.max_candidates,
            include=include,
        )

    # -- snapshots and re-embedding -----------------------------------------------------------
    async def export_snapshot(self, backups: Backups) -> BackupInfo:
        """A collection snapshot written on a thread while the collection keeps serving."""
        col = self.collection

        def write() -> BackupInfo:
            try:
                with refused_when_full(backups.root):
                    return backups.create(col.info, ENGINE, functools.partial(snapshot_source, col))
            except Exception:
                if col.closed:  # deleted meanwhile: its database went away under the copy
                    raise CollectionNotFound(f"collection {col.info.name!r} was deleted", param="collection") from None
                raise

        return await asyncio.to_thread(write)

    def waiting_for_space(self) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
        # A collection opened on a full disk: read-only until it can write, then its full-text index.
        col, waiting = self.collection, []
        if col.store.readonly:
            waiting.append((f"writes to collection {col.info.name!r}", self._on_writer(col.make_writable)))
        if not col.has_fulltext:
            waiting.append((f"full-text index of collection {col.info.name!r}", self._on_writer(col.ensure_fulltext)))
        return waiting

    def _on_writer(self, fn: Callable[[], object]) -> Callable[[], Awaitable[object]]:
        """`fn` as a write to run later on the collection's writer thread (ordered with its inserts)."""

        async def write() -> object:
            return await self.write(fn)

        return write

    def reembedding(self) -> EmbeddedReembedding:
        if self._reembedding is None:
            self._reembedding = EmbeddedReembedding(self)
        return self._reembedding


class EmbeddedReembedding:
    """`Reembedding` over `gateway.storage.reembed`: job rows and new vectors in the collection's own database."""

    leased = False  # one gateway owns the data directory: its jobs need no lease

    def __init__(self, store: EmbeddedStore) -> None:
        self.store = store
        self.col = store.collection
        self._schema = False

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """On the collection's writer thread, ordered with its inserts; `StorageFull` if the disk has no room."""

        def write() -> T:
            with refused_when_full(self.col.folder):
                return fn(*args)

        return await self.store.write(write)

    async def ensure_schema(self) -> None:
        """The job tables, made before a first job starts (reads need none: a full disk still reads)."""
        if not self._schema:
            await self._write(jobs.ensure_schema, self.col)
            self._schema = True

    async def jobs(self) -> list[JobRecord]:
        return await self.store.read(jobs.jobs, self.col)

    async def job(self, job_id: str) -> JobRecord:
        return await self.store.read(jobs.job, self.col, job_id)

    async def remaining(self, after_key: int) -> int:
        return await self.store.read(jobs.remaining, self.col, after_key)

    async def start(self, job_id: str, model: str, pooling: str | None, dimension: int, drop: bool) -> JobRecord:
        return await self._write(jobs.start, self.col, job_id, model, pooling, dimension, drop)

    async def mark_resumed(self, record: JobRecord) -> JobRecord:
        return await self._write(jobs.mark_resumed, self.col, record)

    async def claimable(self) -> list[JobRecord]:
        return []  # no other gateway can die holding one: this gateway resumes its jobs at start

    async def renew(self, job_id: str) -> None:
        return None

    async def release(self, job_id: str) -> None:
        return None

    async def pending(self, job_id: str, after_key: int, limit: int) -> Pending:
        return await self.store.read(jobs.pending, self.col, after_key, limit)

    def new_staged(self, dimension: int) -> VectorIndex:
        return VectorIndex(dimension, self.col.info.metric, self.col.info.index)

    async def load_staged(self, record: JobRecord) -> VectorIndex:
        return await asyncio.to_thread(jobs.load_staged, self.col, record)

    async def store_batch(
        self, job_id: str, staged: VectorIndex, keys: list[int], vectors: np.ndarray, last_key: int
    ) -> None:
        await self._write(jobs.store_batch, self.col, job_id, staged, keys, vectors, last_key)

    async def finish(self, job_id: str, state: str, error: str | None = None) -> None:
        await self._write(jobs.finish, self.col, job_id, state, error)

    async def swap(self, record: JobRecord, staged: VectorIndex, pooling: str | None) -> bool:
        return await self._write(jobs.swap, self.col, record, staged, pooling)
