"""One open collection: opened from its folder (its newest usable index snapshot, then a replay of what the
snapshot lacks), and closed. The rest of it is in the parts it is made of: its writes (collection_writes.py),
its index snapshots (index_snapshots.py), its searches (collection_search.py), over the state they share
(collection_base.py).

Every method here blocks (disk, SQLite, USearch) and runs on a thread, never on the event loop:
writes on the collection's own single writer thread (so they are serialised and the index follows
the database in commit order), reads on the service's shared reader pool, and index snapshots on
the collection's own snapshot thread, so no write request ever waits for one to reach the disk.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import structlog

from gateway.storage.collection_search import DEPTH_PER_K, CollectionSearch
from gateway.storage.collection_writes import CollectionWrites
from gateway.storage.datadir import refused_when_full
from gateway.storage.db import DB_FILE, DocumentStore, vector_matrix
from gateway.storage.engine import CollectionInfo, Hit, StoredDocument, TextQuery
from gateway.storage.errors import DataDirUnusable, StorageFull
from gateway.storage.index import discard_partial, snapshots
from gateway.storage.matches import MAX_BYTES
from gateway.storage.metrics import StorageMetrics

# Names other modules import from here since before the split.
__all__ = ["DEPTH_PER_K", "Collection", "CollectionInfo", "Hit", "TextQuery"]

log = structlog.get_logger("gateway.storage")


class Collection(CollectionWrites, CollectionSearch):
    """A collection opened from its folder; `changes` counts writes the newest index snapshot lacks."""

    @staticmethod
    def initialise(folder: Path, info: CollectionInfo) -> None:
        """Make the database in `folder` (or open the one a restore put there) and record the collection's
        description in it."""
        with refused_when_full(folder):
            store = DocumentStore(folder)
            try:
                store.set_meta("info", info.to_json())
            finally:
                store.close()

    @classmethod
    def open(
        cls, folder: Path, snapshot_every: int, metrics: StorageMetrics, filter_memory: int = MAX_BYTES
    ) -> Collection:
        """Open a stored collection: newest usable index snapshot, then replay what it lacks.

        `DataDirUnusable` names the database file when it cannot be read (corrupt, truncated, empty).
        """
        store = None
        try:
            store = DocumentStore(folder)
            text = store.get_meta("info")
            if text is None:
                raise DataDirUnusable(
                    f"{folder} holds no collection description; move it out of storage.data_dir (its database "
                    f"{folder / DB_FILE} is empty, was not made by AkiDB, or its creation never finished)"
                )
            col = cls(folder, CollectionInfo.from_json(text), store, snapshot_every, metrics, filter_memory)
            with contextlib.suppress(StorageFull):  # served without keyword search until the service builds it
                col.ensure_fulltext()
            col._restore_index()
            return col
        except sqlite3.Error as exc:
            if store is not None:
                store.close()
            raise DataDirUnusable(
                f"cannot read collection database {folder / DB_FILE}: {exc}; restore it from a backup, "
                "or move its folder out of storage.data_dir to start without that collection"
            ) from None
        except DataDirUnusable:
            if store is not None:
                store.close()
            raise

    def ensure_fulltext(self) -> None:
        """Give a collection made before full-text search its index, once, logging progress (writer thread).

        `StorageFull` if the disk has no room to build it: the collection then serves everything but
        keyword and hybrid searches (`FulltextPending`), and the caller tries again once space returns.
        """
        started = time.perf_counter()
        name = self.info.name

        def progress(done: int, total: int) -> None:
            log.info("fulltext_index_progress", collection=name, indexed=done, total=total)

        with refused_when_full(self.folder):
            built = self.store.ensure_fulltext(progress)
        self.has_fulltext = True
        if built:  # a new, empty collection gets its index too, with nothing worth a line
            log.info(
                "fulltext_index_built",
                collection=name,
                documents=built,
                seconds=round(time.perf_counter() - started, 3),
            )

    def _restore_index(self) -> None:
        started = time.perf_counter()
        last_key, last_removal, source = 0, 0, "rebuild"
        discard_partial(self.folder)
        for snap in snapshots(self.folder):
            if self.index.load(snap):
                last_key, last_removal, source = snap.last_key, snap.last_removal, snap.path.name
                break
        removed = [k for k in self.store.removed_after(last_removal) if k <= last_key]
        self.index.remove(removed)
        replayed = 0
        for keys, blobs in self.store.vectors_after(last_key):
            self.index.add(keys, vector_matrix(blobs, self.info.dimension))
            replayed += len(keys)
        self.changes = replayed + len(removed)
        self.marks = self.store.watermarks()
        log.info(
            "collection_opened",
            collection=self.info.name,
            documents=len(self.index),
            snapshot=source,
            replayed=replayed,
            removals_replayed=len(removed),
            seconds=round(time.perf_counter() - started, 3),
        )

    def make_writable(self) -> None:
        """Take writes again in a collection opened read-only on a full disk (writer thread); raises SQLite's
        error while the disk still has no room. Searches wait meanwhile: the read connections change."""
        with self.index.lock.exclusive():
            if self.store.make_writable():
                log.info("collection_writable", collection=self.info.name)

    def close(self, save: bool) -> None:
        """Let a running snapshot finish; snapshot if asked and anything changed; release index and database.

        A failed final snapshot is logged and counted, never raised: the database holds every write.
        """
        if self.closed:
            return
        self.snapshotter.shutdown(wait=True)
        self._forget_saved_removals()
        if save and self.changes:
            try:
                self.snapshot()
            except Exception as exc:
                self._snapshot_failed(exc)
        self.closed = True
        self.index.close()  # waits for running readers; later ones see `closed`
        self.store.close()

    # -- documents by id and in order: the reader pool ---------------------------------------
    def get(self, doc_id: str, with_vector: bool) -> StoredDocument | None:
        with self.index.lock.shared():  # holds off close() while the database is in use
            self._check_open()
            return self.store.get(doc_id, with_vector)

    def page(self, after_key: int, limit: int, with_vector: bool) -> tuple[list[StoredDocument], int]:
        """One page of documents in insertion order, and the total count."""
        with self.index.lock.shared():
            self._check_open()
            return self.store.page(after_key, limit, with_vector), self.store.count()
