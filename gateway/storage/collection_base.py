"""What every part of an open collection shares: its description, its SQLite documents, its USearch index,
the threads that write and snapshot them, and the lock that keeps the index in step with the database.

`Collection` (collection.py) is made of the parts over this state, one idea per module: opening it
(collection.py), its writes (collection_writes.py), scheduling its index snapshots (index_snapshots.py) and
its searches (collection_search.py). Every method of every part blocks (disk, SQLite, USearch) and runs on
a thread, never on the event loop.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from gateway.storage.db import DocumentStore
from gateway.storage.engine import CollectionInfo
from gateway.storage.errors import CollectionNotFound
from gateway.storage.index import VectorIndex
from gateway.storage.matches import MAX_BYTES, MatchCache
from gateway.storage.metrics import StorageMetrics
from gateway.storage.snapshot_policy import SnapshotPolicy


class CollectionBase:
    """A collection's shared state; `changes` counts writes the newest index snapshot lacks."""

    def __init__(
        self,
        folder: Path,
        info: CollectionInfo,
        store: DocumentStore,
        snapshot_every: int,
        metrics: StorageMetrics,
        filter_memory: int = MAX_BYTES,
    ) -> None:
        self.folder = folder
        self.info = info
        self.store = store
        self.metrics = metrics
        self.index = VectorIndex(info.dimension, info.metric, info.index)
        self.filter_memory = filter_memory
        self.matches = MatchCache(store, info.dimension, filter_memory)
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"akidb-write-{info.id}")
        self.snapshotter = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"akidb-snap-{info.id}")
        self.policy = SnapshotPolicy(snapshot_every)
        # Held while the index follows a commit, and while a snapshot copies the index with the
        # watermark it reflects: a snapshot never holds half a batch, nor claims rows it lacks.
        self._applying = threading.Lock()
        self.marks = (0, 0)  # the database watermarks the index reflects
        self.changes = 0
        self._saving: Future[None] | None = None  # the background snapshot (writer thread reads this)
        self._forgettable = 0  # removals a background snapshot saved, for the writer to forget
        # Collection snapshots (backups) in progress: their database copy must still hold every removal
        # after the index copy's watermark, so none is forgotten while one runs.
        self._backups = 0
        self.has_fulltext = False  # until `ensure_fulltext` finds or builds the full-text index
        self.closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise CollectionNotFound(f"collection {self.info.name!r} was deleted")
