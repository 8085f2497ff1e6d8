"""One open collection: its SQLite documents, its USearch index, and the one thread that writes both.

Every method here blocks (disk, SQLite, USearch) and runs on a thread, never on the event loop:
writes on the collection's own single writer thread (so they are serialised and the index follows
the database in commit order), reads on the service's shared reader pool, and index snapshots on
the collection's own snapshot thread, so no write request ever waits for one to reach the disk.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import structlog

from gateway.storage.datadir import data_dir_of, free_bytes, refused_when_full
from gateway.storage.db import DB_FILE, DocumentStore, vector_matrix
from gateway.storage.engine import CollectionInfo, Hit, NewDocument, StoredDocument, TextQuery
from gateway.storage.errors import CollectionNotFound, DataDirUnusable, FulltextPending, ModelChanged, StorageFull
from gateway.storage.filters import Filter
from gateway.storage.fusion import KEYWORD, rrf
from gateway.storage.index import VectorIndex, discard_partial, snapshots
from gateway.storage.matches import MAX_BYTES, MatchCache, Ranked, first_round, one_round, search_within
from gateway.storage.metrics import StorageMetrics
from gateway.storage.snapshot_policy import SnapshotPolicy

log = structlog.get_logger("gateway.storage")

# Hits up to which an unfiltered search runs on the caller's thread (`search_now`).
FAST_K = 100
TEXT_AND_METADATA = frozenset(("text", "metadata"))
WITH_VECTOR = frozenset(("text", "metadata", "vector"))
# Candidates up to which a filtered search whose matches are known runs on the caller's thread (~0.5 ms).
FAST_CANDIDATES = 256
# A hybrid search fuses each list's best DEPTH_PER_K × k. Deeper lists let documents that are mediocre
# in both outrank the best of one: on bench/hybrid.py's task (5,000 packages, 500 queries), lists of
# 100 gained 35 queries over dense at recall@10 and lost 23; lists of 2k gained 28 and lost 11.
DEPTH_PER_K = 2


class Collection:
    """A collection opened from its folder; `changes` counts writes the newest index snapshot lacks."""

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

    def _check_open(self) -> None:
        if self.closed:
            raise CollectionNotFound(f"collection {self.info.name!r} was deleted")

    # -- writes: the writer thread ------------------------------------------------------------
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

    def _maybe_snapshot(self) -> None:
        """Forget what the last snapshot made needless; start one when due and none runs (writer thread)."""
        self._forget_saved_removals()
        if self._saving is not None and not self._saving.done():
            return
        if self.policy.due(self.changes, time.monotonic()):
            self._saving = self.snapshotter.submit(self._snapshot_in_background)

    def _snapshot_in_background(self) -> None:
        try:
            last_removal = self._save()
        except Exception as exc:
            self._snapshot_failed(exc)
            return
        self.policy.succeeded()
        with self._applying:  # removal records go through the writer's connection: it forgets them
            self._forgettable = last_removal

    def _snapshot_failed(self, exc: Exception) -> None:
        retry_in = self.policy.failed(time.monotonic())
        self.metrics.snapshot_failures.inc()
        log.warning(
            "index_snapshot_failed",
            collection=self.info.name,
            error=f"{type(exc).__name__}: {exc}",
            consecutive_failures=self.policy.failures,
            retry_in_s=retry_in,
            unsaved_changes=self.changes,
            free_bytes=free_bytes(self.folder),
        )

    def snapshot(self) -> None:
        """Save the index as of the last commit, and forget removals it now reflects (writer thread)."""
        saved = self._save()
        with self._applying:
            self._forgettable = max(self._forgettable, saved)
        self._forget_saved_removals()

    def _save(self) -> int:
        """Write a snapshot of the index and the watermark it reflects; returns that last removal seq.

        The writer waits only while the index is copied to memory; the disk write runs without locks.
        """
        started = time.perf_counter()
        with self._applying:
            (last_key, last_removal), changes = self.marks, self.changes
            data = self.index.serialize()
        self.index.write_snapshot(self.folder, data, last_key, last_removal)
        with self._applying:
            self.changes -= changes
        self.metrics.snapshots.observe(time.perf_counter() - started)
        log.info(
            "index_snapshot_saved",
            collection=self.info.name,
            documents=len(self.index),
            seconds=round(time.perf_counter() - started, 3),
        )
        return last_removal

    @contextlib.contextmanager
    def backup_source(self) -> Iterator[tuple[bytes, int, int]]:
        """(index bytes, last key, last removal) as of the last commit, for a collection snapshot.

        While the block runs no removal record is forgotten, so a copy of the database made inside it
        holds every row and removal the index copy lacks: a restore replays them as a restart does.
        """
        with self._applying:
            (last_key, last_removal) = self.marks
            data = self.index.serialize()
            self._backups += 1
        try:
            yield data, last_key, last_removal
        finally:
            with self._applying:
                self._backups -= 1

    def _forget_saved_removals(self) -> None:
        with self._applying:
            if self._backups:
                return  # kept for after the backup: `_forgettable` only grows
            seq, self._forgettable = self._forgettable, 0
        if seq:
            self._forget_removed(seq)

    def _forget_removed(self, up_to_seq: int) -> None:
        try:
            self.store.forget_removed(up_to_seq)
        except (sqlite3.Error, StorageFull) as exc:  # kept records are only replayed needlessly: retried later
            log.warning("removals_not_forgotten", collection=self.info.name, error=str(exc))

    def wait_for_snapshot(self) -> None:
        """Block until a background snapshot in progress has finished (for tests and shutdown)."""
        saving = self._saving
        if saving is not None:
            saving.result()

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

    # -- reads: the reader pool ---------------------------------------------------------------
    def search(
        self, query: np.ndarray, k: int, flt: Filter | None, max_candidates: int, with_vector: bool
    ) -> list[Hit]:
        """The k best documents that pass the filter, best first (text and metadata, the vector if asked)."""
        include = WITH_VECTOR if with_vector else TEXT_AND_METADATA
        index = self.index
        with index.lock.shared():
            self._check_open()
            self._check_current(index, query)
            if flt is None:
                keys, scores = self.index.search(query, k)
            else:
                keys, scores = self._filtered(query, k, flt, max_candidates)
            return self._hits(keys, scores, include)

    def search_now(self, query: np.ndarray, k: int, flt: Filter | None, include: frozenset[str]) -> list[Hit] | None:
        """`search` on the calling thread, for the event loop: None when that could wait or take long.

        An unfiltered search of up to FAST_K hits takes ~0.1-0.4 ms, less than handing it to a reader
        thread and back; so does a filtered one whose filter's matches are remembered as of the index's
        state, if it scores them exactly or needs at most FAST_CANDIDATES from the index. It runs here
        only if the index is free right now (an insert holds it for up to one ADD_CHUNK) and an open
        database connection is idle. Otherwise (a filter to look up, a large k, a busy index, no idle
        connection: a closed collection has none) it returns None, and the caller runs `search` on a
        reader thread. Documents come with only the fields in `include`.
        """
        if k > FAST_K or not self.store.reader_idle():
            return None
        index = self.index
        with index.lock.try_shared() as held:
            if not held:
                return None
            self._check_open()
            self._check_current(index, query)
            if flt is None:
                keys, scores = index.search(query, k)
            else:
                matches = self.matches.fresh(flt, self.marks)
                if matches is None:
                    return None
                if matches.vectors is not None:
                    keys, scores = index.exact(query, matches.keys, matches.vectors, k)
                else:
                    count = first_round(index, matches, k)
                    found = one_round(index, query, k, matches, count) if count <= FAST_CANDIDATES else None
                    if found is None:  # more rounds to come: a reader thread starts over
                        return None
                    keys, scores = found
            return self._hits(keys, scores, include)

    def _check_current(self, index: VectorIndex, query: np.ndarray) -> None:
        """`ModelChanged` if a re-embedding swapped the index since the query was embedded for it.

        The swap holds the old index's lock exclusively, so once a search holds it the index it sees stays.
        """
        if index is not self.index or query.shape[-1] != index.dimension:
            raise ModelChanged(f"collection {self.info.name!r} switched to model {self.info.model!r}; retry")

    def keyword_search(self, query: TextQuery, k: int, flt: Filter | None, include: frozenset[str]) -> list[Hit]:
        """The k documents BM25 ranks best for the text that pass the filter, best first (score: BM25)."""
        with self.index.lock.shared():
            self._check_open()
            self._check_fulltext()
            found = self.store.keyword(query.text, query.syntax, k, flt, len(self.index))
            docs = self.store.fetch([key for key, _ in found], include)
            return [
                Hit(docs[key], score, {KEYWORD: rank})
                for rank, (key, score) in enumerate(found, start=1)
                if key in docs
            ]

    def keyword_ranking(self, query: TextQuery, k: int, flt: Filter | None) -> list[tuple[int, float]]:
        """The keys (and BM25 scores) a hybrid search of k fuses from the keyword side, best first.

        Apart from `fuse` so that it can run while the query's text is still being embedded."""
        with self.index.lock.shared():
            self._check_open()
            self._check_fulltext()
            return self.store.keyword(query.text, query.syntax, DEPTH_PER_K * k, flt, len(self.index))

    def _check_fulltext(self) -> None:
        if not self.has_fulltext:
            raise FulltextPending(
                f"collection {self.info.name!r} has no full-text index yet: building it needs disk space under "
                f"storage.data_dir {data_dir_of(self.folder)}, and it is built as soon as space is freed; "
                "dense searches (a query without mode, or a vector) work meanwhile"
            )

    def fuse(
        self,
        vector: np.ndarray,
        keyword: list[tuple[int, float]],
        k: int,
        flt: Filter | None,
        *,
        alpha: float,
        rrf_k: int,
        max_candidates: int,
        include: frozenset[str],
    ) -> list[Hit]:
        """The dense ranking (filtered) fused with a keyword ranking by reciprocal rank fusion (score: RRF's).

        A document the keyword side found and a write removed since is dropped by the fetch."""
        depth = DEPTH_PER_K * k
        index = self.index  # the one whose lock is held, searched below
        with index.lock.shared():
            self._check_open()
            self._check_current(index, vector)
            if flt is None:
                dense, _ = index.search(vector, depth)
            else:
                dense, _ = self._filtered(vector, depth, flt, max_candidates)
            fused = rrf(dense.tolist(), [key for key, _ in keyword], rrf_k, alpha, k)
            docs = self.store.fetch([f.key for f in fused], include)
            return [Hit(docs[f.key], f.score, f.ranks) for f in fused if f.key in docs]

    def hybrid_search(
        self,
        vector: np.ndarray,
        query: TextQuery,
        k: int,
        flt: Filter | None,
        *,
        alpha: float,
        rrf_k: int,
        max_candidates: int,
        include: frozenset[str],
    ) -> list[Hit]:
        """Dense and keyword rankings (both filtered) fused by reciprocal rank fusion (score: the RRF score)."""
        keyword = self.keyword_ranking(query, k, flt)
        return self.fuse(
            vector, keyword, k, flt, alpha=alpha, rrf_k=rrf_k, max_candidates=max_candidates, include=include
        )

    def _hits(self, keys: np.ndarray, scores: np.ndarray, include: frozenset[str]) -> list[Hit]:
        """The documents behind keys, as hits (caller holds the index lock, which holds off close)."""
        key_list, score_list = keys.tolist(), scores.tolist()
        docs = self.store.fetch(key_list, include)
        return [Hit(docs[key], score) for key, score in zip(key_list, score_list, strict=True) if key in docs]

    def _filtered(self, query: np.ndarray, k: int, flt: Filter, max_candidates: int) -> Ranked:
        """The k best that pass the filter (`matches.search_within`; caller holds the index lock)."""
        matches = self.matches.get(flt, self.marks)
        return search_within(self.index, self.store, query, k, matches, max_candidates)

    def get(self, doc_id: str, with_vector: bool) -> StoredDocument | None:
        with self.index.lock.shared():  # holds off close() while the database is in use
            self._check_open()
            return self.store.get(doc_id, with_vector)

    def page(self, after_key: int, limit: int, with_vector: bool) -> tuple[list[StoredDocument], int]:
        """One page of documents in insertion order, and the total count."""
        with self.index.lock.shared():
            self._check_open()
            return self.store.page(after_key, limit, with_vector), self.store.count()
