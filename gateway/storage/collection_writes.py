"""A collection's writes, on its own single writer thread: stored in SQLite (one durable transaction), then
applied to the index in commit order, so the index never holds a row the database lacks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from gateway.storage.datadir import refused_when_full
from gateway.storage.engine import CollectionInfo, NewDocument
from gateway.storage.errors import ModelChanged, StorageFull
from gateway.storage.index import VectorIndex
from gateway.storage.index_snapshots import IndexSnapshots
from gateway.storage.matches import MatchCache


class CollectionWrites(IndexSnapshots):
    """Upserts, deletes and a re-embedding's index swap; each may start an index snapshot when one is due."""

    def upsert(self, docs: list[NewDocument], embedded_for: CollectionInfo | None = None) -> None:
        """Store all documents (one durable transaction), then index them.

        A write the disk has no room for raises `StorageFull` with nothing stored and the index untouched.
        `embedded_for` is the description the vectors were made under: `ModelChanged` if a re-embedding
        swapped the model since.
        """
        self._check_open()
        if embedded_for is not None and embedded_for is not self.info:
            raise ModelChanged(f"collection {self.info.name!r} switched to model {self.info.model!r}; retry")
        vectors = np.ascontiguousarray(np.stack([d.vector for d in docs]), dtype=np.float32)
        with self._refusing_when_full():
            result = self.store.upsert(docs, vectors)
        # Committed: only now does the index change, so a refused write leaves it as the database is.
        with self._applying:
            self.index.remove(result.removed_keys)
            self.index.add(result.added_keys, vectors)
            self.marks = result.marks
            self.changes += len(docs) + len(result.removed_keys)
        self._maybe_snapshot()

    def delete(self, doc_id: str) -> bool:
        """Delete one document; False if it did not exist."""
        self._check_open()
        with self._refusing_when_full():
            key = self.store.delete(doc_id)
        if key is None:
            return False
        with self._applying:
            self.index.remove([key])
            self.marks = self.store.watermarks()
            self.changes += 1
        self._maybe_snapshot()
        return True

    def replace_index(self, info: CollectionInfo, index: VectorIndex) -> None:
        """Serve `index` under a new description from now on (a re-embedding's swap; writer thread).

        The old index is closed once the searches running on it end; the new one is saved soon after.
        """
        old = self.index
        with self._applying, old.lock.exclusive():
            self.info, self.index = info, index
            self.matches = MatchCache(self.store, info.dimension, self.filter_memory)  # the old model's vectors go
            self.marks = self.store.watermarks()
            self.changes = len(index) + 1
        old.close()
        self._maybe_snapshot()

    @contextlib.contextmanager
    def _refusing_when_full(self) -> Iterator[None]:
        """A write the disk cannot hold becomes `StorageFull`; the writable gauge follows every write."""
        try:
            with refused_when_full(self.folder):
                yield
        except StorageFull:
            self.metrics.set_writable(False)
            raise
        self.metrics.set_writable(True)
