"""The PostgreSQL engine behind the storage seam: `PgCatalogue` and `PgStore` over `Catalogue` and `PgDocuments`.

Every database call blocks (psycopg's sync API over `psycopg_pool`) and runs on the engine's own thread
pool, one thread per pooled connection, never on the event loop. A write is acknowledged only after
its COMMIT (`PgDocuments.upsert`: one transaction, all or nothing).

This gateway keeps a view of the catalogue (id and name → store) so that `get` answers without a query;
it is reloaded when this gateway changes the catalogue, and when another gateway's change is noticed
(`gateway.storage.postgres.listener`: LISTEN/NOTIFY and a generation check, within about a second).
A store whose table another gateway dropped answers `CollectionNotFound` at its next statement.

Re-embedding jobs are leased to one gateway at a time (`gateway.storage.postgres.reembed`); a job whose
gateway died is taken over by another. Collection snapshots are written and restored in the embedded
engine's file format (`postgres.snapshots`), so a snapshot moves a collection between engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import secrets
import shutil
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psycopg
import psycopg_pool
import structlog

from gateway.storage import snapshot_db
from gateway.storage.backup import BackupInfo, Backups, Source, restore_folder
from gateway.storage.collection import DEPTH_PER_K
from gateway.storage.datadir import refused_when_full
from gateway.storage.db import DB_FILE
from gateway.storage.engine import CollectionInfo, Hit, NewDocument, Reembedding, StoredDocument, TextQuery
from gateway.storage.errors import (
    CollectionExists,
    CollectionNotFound,
    EngineUnavailable,
    EngineUnsupported,
    KeywordSyntaxError,
    ModelChanged,
    StorageError,
    UnstorableValue,
)
from gateway.storage.filters import Where
from gateway.storage.lease import LeasePolicy
from gateway.storage.postgres import snapshots
from gateway.storage.postgres.catalogue import Catalogue, open_pool, prepare
from gateway.storage.postgres.documents import PgDocuments
from gateway.storage.postgres.dsn import redacted
from gateway.storage.postgres.listener import CatalogueWatcher
from gateway.storage.postgres.reembed import JobTable, PgReembedding
from gateway.storage.snapshot_db import empty_index
from shared.config import StorageConfig

log = structlog.get_logger("gateway.storage")
T = TypeVar("T")
ENGINE = "postgres"


def unsupported(feature: str) -> EngineUnsupported:
    return EngineUnsupported(
        f"{feature} is not available with storage.backend postgres yet; use storage.backend embedded for it"
    )


def _check_syntax(text: TextQuery) -> None:
    """FTS5's query language is SQLite's; PostgreSQL would read the same text differently, so it is refused.

    A 400 naming the field, not a 501: the request asks for a query language this deployment's
    collections cannot be searched with, which the client changes (the API contract allows no 5xx)."""
    if text.syntax == "fts5":
        raise KeywordSyntaxError(
            'keyword_syntax "fts5" is SQLite FTS5\'s query language, which collections on storage.backend postgres '
            'cannot be searched with; send "keyword_syntax": "plain"',
            param="keyword_syntax",
        )


class PgStore:
    """`CollectionStore` over one collection's table."""

    engine = ENGINE

    def __init__(self, docs: PgDocuments, threads: ThreadPoolExecutor, catalogue: PgCatalogue) -> None:
        self.docs = docs
        self.threads = threads
        self.catalogue = catalogue
        self.rrf_k = catalogue.cfg.rrf_k
        self.dsn = catalogue.dsn
        self._closed = False
        self._reembedding: PgReembedding | None = None

    @property
    def info(self) -> CollectionInfo:
        return self.docs.info

    @property
    def closed(self) -> bool:
        return self._closed

    def mark_closed(self) -> None:
        self._closed = True

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """One blocking call on the engine's threads, its database errors as storage errors."""
        if self._closed:
            raise CollectionNotFound(f"collection {self.info.name!r} was deleted", param="collection")
        try:
            return await asyncio.get_running_loop().run_in_executor(self.threads, self._guarded, fn, *args)
        except RuntimeError:  # the thread pool was shut down: the engine closed under the request
            raise CollectionNotFound(f"collection {self.info.name!r} is closed", param="collection") from None

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        with database_errors(self.dsn, self.info.name):
            return fn(*args)

    # -- writes -------------------------------------------------------------------------------
    async def upsert(self, docs: list[NewDocument], embedded_for: CollectionInfo | None = None) -> None:
        if embedded_for is not None and embedded_for is not self.info:
            raise ModelChanged(f"collection {self.info.name!r} switched to model {self.info.model!r}; retry")
        try:
            await self.run(self.docs.upsert, docs)
        except UnstorableValue:
            # Another gateway's re-embedding may have changed the column's dimension before this gateway
            # heard of it: that is a retry with the new model, not the client's bad value.
            current = await self.catalogue.described(self.info.id)
            if current is not None and (current.model, current.dimension) != (self.info.model, self.info.dimension):
                raise ModelChanged(
                    f"collection {self.info.name!r} switched to model {current.model!r}; retry"
                ) from None
            raise

    async def delete(self, doc_id: str) -> bool:
        return await self.run(self.docs.delete, doc_id)

    # -- reads --------------------------------------------------------------------------------
    async def count(self) -> int:
        return await self.run(self.docs.count)

    def count_now(self) -> int | None:
        return None  # only the database knows: another gateway may have written

    async def get(self, doc_id: str, with_vector: bool) -> StoredDocument | None:
        return await self.run(self.docs.get, doc_id, with_vector)

    async def page(self, after_key: int, limit: int, with_vector: bool) -> tuple[list[StoredDocument], int]:
        return await self.run(self.docs.page, after_key, limit, with_vector)

    # -- search -------------------------------------------------------------------------------
    def search_inline(
        self, vector: np.ndarray, k: int, where: Where | None, include: frozenset[str]
    ) -> list[Hit] | None:
        return None  # every search is a round trip to the database: never on the event loop

    async def search(self, vector: np.ndarray, k: int, where: Where | None, include: frozenset[str]) -> list[Hit]:
        return await self.run(self.docs.search, vector, k, where, include)

    async def keyword_search(self, text: TextQuery, k: int, where: Where | None, include: frozenset[str]) -> list[Hit]:
        _check_syntax(text)
        return await self.run(self.docs.keyword_search, text, k, where, include)

    async def keyword_ranking(self, text: TextQuery, k: int, where: Where | None) -> list[tuple[int, float]]:
        _check_syntax(text)
        return await self.run(self.docs.keyword_ranking, text, DEPTH_PER_K * k, where)

    async def fuse(
        self,
        vector: np.ndarray,
        ranking: list[tuple[int, float]],
        k: int,
        where: Where | None,
        alpha: float,
        include: frozenset[str],
    ) -> list[Hit]:
        fuse = functools.partial(self.docs.fuse, alpha=alpha, rrf_k=self.rrf_k, include=include)
        return await self.run(fuse, vector, ranking, k, where)

    async def hybrid_search(
        self, vector: np.ndarray, text: TextQuery, k: int, where: Where | None, alpha: float, include: frozenset[str]
    ) -> list[Hit]:
        _check_syntax(text)
        return await self.run(
            functools.partial(self.docs.hybrid_search, alpha=alpha, rrf_k=self.rrf_k, include=include),
            vector,
            text,
            k,
            where,
        )

    def reembedding(self) -> Reembedding:
        if self._reembedding is None:
            cat = self.catalogue
            table = JobTable(self.docs.pool, self.info, cat.holder, cat.lease_policy)
            self._reembedding = PgReembedding(table, self.run, cat.swapped)
        return self._reembedding

    # -- not on this engine yet ---------------------------------------------------------------

    async def export_snapshot(self, backups: Backups) -> BackupInfo:
        """A collection snapshot in the embedded engine's format (`postgres.snapshots.export`), written on a
        thread from one consistent read of the table while the collection keeps serving."""
        if self._closed:
            raise CollectionNotFound(f"collection {self.info.name!r} was deleted", param="collection")
        info = self.info

        def source(work: Path) -> Source:
            documents = snapshots.export(self.docs.pool, info, work / DB_FILE)
            return Source(documents, *empty_index(info))

        def write() -> BackupInfo:
            with database_errors(self.dsn, info.name), refused_when_full(backups.root):
                return backups.create(info, ENGINE, source)

        # Its own thread, not the engine's: the tar is paced (storage.snapshot_rate_mb_s) and needs no connection.
        return await asyncio.to_thread(write)

    def waiting_for_space(self) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
        return []  # the database's disk is not this gateway's: a full one is a failed statement, not a wait


class PgCatalogue:
    """`Catalogue` over the database's `akidb_collections`, with this gateway's view of it."""

    engine = ENGINE

    def __init__(self, cfg: StorageConfig) -> None:
        assert cfg.postgres.dsn is not None  # the config refuses backend postgres without one
        self.cfg = cfg
        self.dsn = cfg.postgres.dsn
        self.data_root = Path(cfg.data_dir)  # local files only: none for collections on this engine
        self.threads = ThreadPoolExecutor(max_workers=cfg.postgres.pool_size, thread_name_prefix="akidb-pg")
        self.pool: psycopg_pool.ConnectionPool[Any] | None = None
        self.catalogue: Catalogue | None = None
        self._by_id: dict[str, PgStore] = {}
        self.watcher = CatalogueWatcher(self.dsn, self._generation, self.reload)
        self._watching: asyncio.Task[None] | None = None
        # Who holds a re-embedding job's lease: this gateway process, named for the logs and the jobs table.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_policy = LeasePolicy(cfg.postgres.job_lease_s)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Check pgvector, migrate the schema, open the pool and read the catalogue (raises `StorageError`)."""
        await self._call(prepare, self.dsn)
        pg = self.cfg.postgres
        self.pool = await self._call(
            open_pool, self.dsn, size=pg.pool_size, statement_timeout_ms=pg.statement_timeout_ms
        )
        self.catalogue = Catalogue(self.pool)
        await self.watcher.check()
        self._watching = asyncio.create_task(self.watcher.run(), name="akidb-catalogue-watch")
        log.info("postgres_catalogue_opened", collections=len(self._by_id), dsn=redacted(self.dsn, self.dsn))

    async def close(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)
        for store in self._by_id.values():
            store.mark_closed()
        self._by_id.clear()
        if self.pool is not None:
            await asyncio.get_running_loop().run_in_executor(self.threads, self.pool.close)
        await asyncio.to_thread(self.threads.shutdown)

    def has_room(self) -> bool:
        return True  # no collection file lives on this gateway's disk, so no start-up write waits for it

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def guarded() -> T:
            with database_errors(self.dsn, None):
                return fn(*args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self.threads, guarded)

    def _cat(self) -> Catalogue:
        if self.catalogue is None:
            raise EngineUnavailable("the PostgreSQL catalogue is not open (the gateway is starting or stopping)")
        return self.catalogue

    async def _generation(self) -> int:
        return await self._call(self._cat().generation)

    async def reload(self) -> None:
        """Read the catalogue again: stores for new collections, and gone ones closed."""
        infos = await self._call(self._cat().list)
        self._apply(infos)

    def _apply(self, infos: Sequence[CollectionInfo]) -> None:
        fresh: dict[str, PgStore] = {}
        for info in infos:
            known = self._by_id.get(info.id)
            fresh[info.id] = known if known is not None and known.info == info else self._store(info)
        for gone in self._by_id.keys() - fresh.keys():
            self._by_id[gone].mark_closed()
        self._by_id = fresh

    def _store(self, info: CollectionInfo) -> PgStore:
        assert self.pool is not None
        return PgStore(PgDocuments(self.pool, info), self.threads, self)

    async def swapped(self, info: CollectionInfo) -> None:
        """A re-embedding this gateway ran changed a collection's description: serve the new one now."""
        await self.reload()

    async def described(self, collection_id: str) -> CollectionInfo | None:
        """A collection's description as the database has it now (None if it is gone)."""
        infos = await self._call(self._cat().list)
        return next((i for i in infos if i.id == collection_id), None)

    # -- lookups ------------------------------------------------------------------------------
    def find(self, ref: str) -> PgStore | None:
        store = self._by_id.get(ref)
        if store is None:
            store = next((s for s in self._by_id.values() if s.info.name == ref), None)
        return store

    def get(self, ref: str) -> PgStore:
        store = self.find(ref)
        if store is None:
            raise CollectionNotFound(f"no collection {ref!r}; GET /collections lists them", param="collection")
        return store

    def opened(self) -> list[PgStore]:
        return sorted(self._by_id.values(), key=lambda s: s.info.created_at)

    def check_name_free(self, name: str) -> None:
        if any(s.info.name == name for s in self._by_id.values()):
            raise CollectionExists(f"a collection named {name!r} already exists", param="name")

    # -- changes ------------------------------------------------------------------------------
    async def create(self, info: CollectionInfo) -> PgStore:
        """One transaction makes the row and the table: of two gateways creating one name, one wins."""
        docs = await self._call(self._cat().create, info)
        store = PgStore(docs, self.threads, self)
        self._by_id[info.id] = store
        return store

    async def delete(self, ref: str) -> CollectionInfo:
        store = self.get(ref)
        try:
            info = await self._call(self._cat().delete, store.info.name)
        finally:
            store.mark_closed()
            self._by_id.pop(store.info.id, None)
        return info

    async def restore(self, name: str, unpack: Callable[[Path], str]) -> PgStore:
        """Unpack and check the snapshot into a local folder, then create the collection and copy its documents
        in one transaction (`postgres.snapshots.copy_in`): all of it, or nothing, and a taken name is refused."""
        self.check_name_free(name)
        staging = await asyncio.to_thread(restore_folder, self.data_root)
        try:
            old = CollectionInfo.from_json(await asyncio.to_thread(self._unpack, unpack, staging))
            info = dataclasses.replace(old, id="col_" + secrets.token_hex(8), name=name, created_at=time.time())
            database = staging / DB_FILE
            documents = await asyncio.to_thread(snapshot_db.count, database)
            fill = functools.partial(snapshots.copy_in, info=info, database=database, documents=documents)
            docs = await self._call(self._cat().create, info, fill)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        store = PgStore(docs, self.threads, self)
        self._by_id[info.id] = store
        return store

    def _unpack(self, unpack: Callable[[Path], str], staging: Path) -> str:
        with refused_when_full(staging):
            return unpack(staging)

    def check_restorable(self) -> None:
        return None  # any snapshot either engine wrote


@contextlib.contextmanager
def database_errors(dsn: str, collection: str | None) -> Iterator[None]:
    """psycopg's errors as storage errors, their text with the DSN's password hidden."""
    try:
        yield
    except StorageError:
        raise
    except psycopg.errors.UndefinedTable:  # another gateway dropped the collection
        name = f" {collection!r}" if collection else ""
        raise CollectionNotFound(f"collection{name} was deleted", param="collection") from None
    except psycopg.DataError as exc:  # a value PostgreSQL refuses: a NUL in a text, in a string of the metadata
        raise UnstorableValue(
            f"a value cannot be stored or searched with storage.backend postgres: {redacted(str(exc), dsn)}"
        ) from None
    except psycopg.errors.QueryCanceled as exc:
        raise EngineUnavailable(
            f"the database cancelled the statement ({redacted(str(exc), dsn)}); it ran past "
            "storage.postgres.statement_timeout_ms"
        ) from None
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        raise EngineUnavailable(f"the PostgreSQL database is unreachable: {redacted(str(exc), dsn)}") from None
