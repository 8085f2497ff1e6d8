"""One open collection: its SQLite documents, its USearch index, and the one thread that writes both.

Every method here blocks (disk, SQLite, USearch) and runs on a thread, never on the event loop:
writes on the collection's own single writer thread (so they are serialised and the index follows
the database in commit order), reads on the service's shared reader pool.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from gateway.storage.db import DocumentStore, NewDocument, StoredDocument
from gateway.storage.errors import CollectionNotFound, StorageError
from gateway.storage.filters import Filter
from gateway.storage.index import IndexParams, VectorIndex, discard_partial, snapshots
from gateway.storage.metrics import StorageMetrics

log = structlog.get_logger("gateway.storage")

# Candidates fetched per widened HNSW round, as a multiple of what the filter's selectivity predicts.
OVERFETCH = 1.5


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection is; fixed at creation and stored in its database."""

    id: str
    name: str
    dimension: int
    metric: str
    model: str
    pooling: str | None
    normalize: bool
    index: IndexParams
    created_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CollectionInfo:
        data = json.loads(text)
        return cls(**{**data, "index": IndexParams(**data["index"])})


@dataclass(frozen=True)
class Hit:
    doc: StoredDocument
    score: float


class Collection:
    """A collection opened from its folder; `changes` counts writes since the last index snapshot."""

    def __init__(
        self, folder: Path, info: CollectionInfo, store: DocumentStore, snapshot_every: int, metrics: StorageMetrics
    ) -> None:
        self.folder = folder
        self.info = info
        self.store = store
        self.snapshot_every = snapshot_every
        self.metrics = metrics
        self.index = VectorIndex(info.dimension, info.metric, info.index)
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"akidb-write-{info.id}")
        self.changes = 0
        self.closed = False

    @staticmethod
    def initialise(folder: Path, info: CollectionInfo) -> None:
        """Make the database in an empty `folder` and record the collection's description in it."""
        store = DocumentStore(folder)
        store.set_meta("info", info.to_json())
        store.close()

    @classmethod
    def open(cls, folder: Path, snapshot_every: int, metrics: StorageMetrics) -> Collection:
        """Open a stored collection: newest usable index snapshot, then replay what it lacks."""
        store = DocumentStore(folder)
        text = store.get_meta("info")
        if text is None:
            store.close()
            raise StorageError(
                f"{folder} holds no collection description; move it out of storage.data_dir "
                "(it was not made by AkiDB, or its creation never finished)"
            )
        col = cls(folder, CollectionInfo.from_json(text), store, snapshot_every, metrics)
        col._restore_index()
        return col

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
            self.index.add(keys, self._matrix(blobs))
            replayed += len(keys)
        self.changes = replayed + len(removed)
        log.info(
            "collection_opened",
            collection=self.info.name,
            documents=len(self.index),
            snapshot=source,
            replayed=replayed,
            removals_replayed=len(removed),
            seconds=round(time.perf_counter() - started, 3),
        )

    def _matrix(self, blobs: list[bytes]) -> np.ndarray:
        return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), self.info.dimension)

    def _check_open(self) -> None:
        if self.closed:
            raise CollectionNotFound(f"collection {self.info.name!r} was deleted")

    # -- writes: the writer thread ------------------------------------------------------------
    def upsert(self, docs: list[NewDocument]) -> None:
        """Store all documents (one durable transaction), then index them."""
        self._check_open()
        result = self.store.upsert(docs)
        self.index.remove(result.removed_keys)
        self.index.add(result.added_keys, np.stack([d.vector for d in docs]))
        self._changed(len(docs) + len(result.removed_keys))

    def delete(self, doc_id: str) -> bool:
        """Delete one document; False if it did not exist."""
        self._check_open()
        key = self.store.delete(doc_id)
        if key is None:
            return False
        self.index.remove([key])
        self._changed(1)
        return True

    def _changed(self, n: int) -> None:
        self.changes += n
        if self.changes >= self.snapshot_every:
            self.snapshot()

    def snapshot(self) -> None:
        """Save the index as of the last commit, and forget removals it now reflects."""
        started = time.perf_counter()
        last_key, last_removal = self.store.watermarks()
        self.index.save(self.folder, last_key, last_removal)
        self.store.forget_removed(last_removal)
        self.changes = 0
        self.metrics.snapshots.observe(time.perf_counter() - started)
        log.info(
            "index_snapshot_saved",
            collection=self.info.name,
            documents=len(self.index),
            seconds=round(time.perf_counter() - started, 3),
        )

    def close(self, save: bool) -> None:
        """Snapshot if asked and anything changed, then release the index and the database."""
        if self.closed:
            return
        if save and self.changes:
            self.snapshot()
        self.closed = True
        self.index.close()  # waits for running readers; later ones see `closed`
        self.store.close()

    # -- reads: the reader pool ---------------------------------------------------------------
    def search(
        self, query: np.ndarray, k: int, flt: Filter | None, max_candidates: int, with_vector: bool
    ) -> list[Hit]:
        """The k best documents that pass the filter, best first."""
        with self.index.lock.shared():
            self._check_open()
            if flt is None:
                keys, scores = self.index.search(query, k)
            else:
                keys, scores = self._filtered(query, k, flt, max_candidates)
            docs = self.store.fetch([int(x) for x in keys], with_vector)
        return [Hit(docs[int(key)], float(score)) for key, score in zip(keys, scores, strict=True) if int(key) in docs]

    def _filtered(self, query: np.ndarray, k: int, flt: Filter, max_candidates: int) -> tuple[np.ndarray, np.ndarray]:
        """Widen the HNSW search until k candidates pass the filter; a filter too rare for that gets
        exact search over the documents that match it. Either way k come back if k match."""
        total = len(self.index)
        count = min(total, max(4 * k, 64))
        while True:
            keys, scores = self.index.search(query, count)
            passing = self.store.matching_keys([int(x) for x in keys], flt)
            keep = np.fromiter((int(x) in passing for x in keys), dtype=bool, count=len(keys))
            found = int(keep.sum())
            if found >= k or count >= total:
                return keys[keep][:k], scores[keep][:k]
            if count >= max_candidates:
                return self._exact(query, k, flt)
            # Aim at k from the selectivity seen so far (x4 when nothing passed yet), with headroom.
            wanted = count * 4 if not found else math.ceil(count * k / found * OVERFETCH)
            count = min(total, max_candidates, max(wanted, count * 2))

    def _exact(self, query: np.ndarray, k: int, flt: Filter | None) -> tuple[np.ndarray, np.ndarray]:
        keys, blobs = self.store.matching_vectors(flt)
        if not blobs:
            return keys, np.empty(0, dtype=np.float32)
        return self.index.exact(query, keys, self._matrix(blobs), k)

    def get(self, doc_id: str, with_vector: bool) -> StoredDocument | None:
        with self.index.lock.shared():  # holds off close() while the database is in use
            self._check_open()
            return self.store.get(doc_id, with_vector)

    def page(self, after_key: int, limit: int, with_vector: bool) -> tuple[list[StoredDocument], int]:
        """One page of documents in insertion order, and the total count."""
        with self.index.lock.shared():
            self._check_open()
            return self.store.page(after_key, limit, with_vector), self.store.count()

    def describe(self) -> dict[str, Any]:
        """The collection as the API shows it."""
        info = self.info
        return {
            "id": info.id,
            "name": info.name,
            "dimension": info.dimension,
            "metric": info.metric,
            "model": info.model,
            "pooling": info.pooling,
            "normalize": info.normalize,
            "index": asdict(info.index),
            "document_count": len(self.index),
            "created_at": info.created_at,
        }
