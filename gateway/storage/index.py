"""One collection's USearch HNSW index: add, remove, search, and crash-safe snapshots.

A snapshot file is named for the database state it reflects, `index-<last key>-<last removal>.usearch`,
so loading one tells exactly which rows and removals to replay from SQLite. Files are written to a
temporary name, fsynced and renamed, so a crash mid-save leaves the previous snapshot intact.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
from usearch.index import Index

from gateway.storage.datadir import fsync_path
from gateway.storage.rwlock import RWLock

log = structlog.get_logger("gateway.storage")

USEARCH_METRICS = {"cosine": "cos", "l2": "l2sq", "ip": "ip"}
SNAPSHOT = re.compile(r"^index-(\d+)-(\d+)\.usearch$")
ADD_CHUNK = 512  # vectors added per exclusive hold, so searches interleave with a large batch
# Parallel insertion into a sparse graph links it poorly: on 400 vectors, 1 query in 12 missed exact
# neighbours that serial insertion finds. Build the first vectors on one thread, then use all cores.
# From 1,000 on it makes no difference (real MiniLM vectors, 2,000/5,000/10,000 indexed, recall@10
# 0.994-0.998 either way) and the serial start cost ~8 % of a 99k bulk load when it ran to 10,000.
SERIAL_BELOW = 1_000


@dataclass(frozen=True)
class IndexParams:
    """HNSW settings: `connectivity` (M) is fixed at creation; the expansions are ef at add and search."""

    connectivity: int
    expansion_add: int
    expansion_search: int
    dtype: str


@dataclass(frozen=True)
class Snapshot:
    path: Path
    last_key: int
    last_removal: int


class VectorIndex:
    """USearch behind a readers-writer lock: searches run together, changes run alone."""

    def __init__(self, dimension: int, metric: str, params: IndexParams) -> None:
        self.dimension = dimension
        self.metric = metric
        self.params = params
        self.lock = RWLock()
        self._index = self._new()

    def _new(self) -> Index:
        return Index(
            ndim=self.dimension,
            metric=USEARCH_METRICS[self.metric],
            dtype=self.params.dtype,
            connectivity=self.params.connectivity,
            expansion_add=self.params.expansion_add,
            expansion_search=self.params.expansion_search,
        )

    def __len__(self) -> int:
        return len(self._index)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under keys that are not in the index yet."""
        for start in range(0, len(keys), ADD_CHUNK):
            with self.lock.exclusive():
                threads = 1 if len(self._index) < SERIAL_BELOW else 0
                self._index.add(keys[start : start + ADD_CHUNK], vectors[start : start + ADD_CHUNK], threads=threads)

    def remove(self, keys: list[int]) -> None:
        if keys:
            with self.lock.exclusive():
                self._index.remove(np.array(keys, dtype=np.uint64))

    def search(self, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, scores) of the `count` nearest, best first. Caller holds `lock.shared()`."""
        if count < 1:  # USearch refuses 0, which a filtered search of an empty index asks for
            return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.float32)
        matches = self._index.search(query, count, threads=1)
        return matches.keys.astype(np.uint64), self.scores(matches.distances)

    def scores(self, distances: np.ndarray) -> np.ndarray:
        """USearch distances as the API's scores: similarity for cosine and ip, distance for l2."""
        if self.metric == "l2":
            return np.sqrt(np.maximum(distances, 0.0))
        return 1.0 - distances

    def exact(self, query: np.ndarray, keys: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force top k over given vectors, scored as `search` scores."""
        if self.metric == "l2":
            scores = np.sqrt(np.maximum(((vectors - query) ** 2).sum(axis=1), 0.0))
            order = np.argsort(scores, kind="stable")[:k]
        else:  # cosine vectors are stored unit-length, so the dot product is the cosine
            scores = vectors @ query
            order = np.argsort(-scores, kind="stable")[:k]
        return keys[order], scores[order]

    # -- snapshots ----------------------------------------------------------------------------
    def serialize(self) -> bytes:
        """The whole index as bytes, in memory: fast, so a snapshot holds writers back only this long."""
        with self.lock.shared():
            data = self._index.save()  # no path: USearch returns the bytes
        assert data is not None
        return data

    @staticmethod
    def write_snapshot(folder: Path, data: bytes, last_key: int, last_removal: int) -> Snapshot:
        """Write serialized index bytes as a snapshot, atomically, then delete older ones.

        On failure (a full or read-only disk) the half-written file is removed and the error raised:
        the previous snapshot and the database still hold everything.
        """
        final = folder / f"index-{last_key}-{last_removal}.usearch"
        tmp = folder / (final.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_path(folder)
        for old in snapshots(folder):
            if old.path != final:
                old.path.unlink(missing_ok=True)
        return Snapshot(final, last_key, last_removal)

    def load(self, snapshot: Snapshot) -> bool:
        """Load a snapshot in place of the current contents; False (and empty) if it is unusable."""
        try:
            meta = Index.metadata(str(snapshot.path))
            if not meta or meta.get("dimensions") != self.dimension:
                raise ValueError(f"snapshot holds dimension {meta and meta.get('dimensions')}")
            with self.lock.exclusive():
                self._index.load(str(snapshot.path))  # keeps this object's expansion settings
            return True
        except (RuntimeError, ValueError, OSError) as exc:
            log.warning("index_snapshot_unusable", path=str(snapshot.path), error=str(exc))
            with self.lock.exclusive():
                self._index = self._new()
            return False

    def close(self) -> None:
        """Free the index memory. Takes the lock, so running searches finish first."""
        with self.lock.exclusive():
            self._index.reset()


def discard_partial(folder: Path) -> None:
    """Delete snapshot files a crash left half-written."""
    for path in folder.glob("index-*.usearch.tmp"):
        path.unlink(missing_ok=True)


def snapshots(folder: Path) -> list[Snapshot]:
    """Snapshot files in a collection folder, newest first."""
    found = []
    for path in folder.glob("index-*.usearch"):
        m = SNAPSHOT.match(path.name)
        if m:
            found.append(Snapshot(path, int(m.group(1)), int(m.group(2))))
    return sorted(found, key=lambda s: (s.last_key, s.last_removal), reverse=True)
