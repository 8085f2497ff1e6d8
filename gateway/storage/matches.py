"""Which documents a metadata filter matches, remembered per collection and kept current as it changes,
and the search within them.

A filtered search asks the index for candidates and keeps those that pass the filter. Asking SQLite
about each search's candidates costs a JSON evaluation per candidate and a widening round whenever
too few pass; a rare filter ends in a scan of every document (~45 ms at 100k). Filters repeat (a
tenant, a language, a category), so the first search with one scans once and later ones look its
keys up in memory, which also tells the selectivity up front: one index round sized for it, or, for
a filter matching at most EXACT_UP_TO documents, an exact scoring of just those (their vectors kept
with the keys).

An entry is tagged with the watermarks it reflects. After writes it is brought up to date, not
rebuilt: rows with newer keys are checked against the filter (a range on the primary key) and keys
removed since are dropped (the `removed` table). If snapshots have since forgotten some of those
removals, it is rebuilt.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from gateway.storage.db import DocumentStore
from gateway.storage.filters import Filter
from gateway.storage.index import VectorIndex

Ranked = tuple[np.ndarray, np.ndarray]  # (keys, scores), best first

# Matches up to which the vectors are kept and all of them scored exactly (1.5 KB each at 384-d): at
# 4,096 of 100k a single-thread matrix product beats the index round a filter that rare needs.
EXACT_UP_TO = 4096
MAX_BYTES = 32 * 2**20  # per collection (storage.filter_memory_mb); least recently used filters go first
# Candidates asked of the index per round, as a multiple of what the filter's selectivity predicts.
OVERFETCH = 1.5


@dataclass(frozen=True)
class Matches:
    """The keys (sorted) of the documents a filter matches, as of `marks`; their vectors if few."""

    marks: tuple[int, int]
    keys: np.ndarray
    vectors: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + (0 if self.vectors is None else self.vectors.nbytes))

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """For each key, whether it is among the matches."""
        if not len(self.keys):
            return np.zeros(len(keys), dtype=bool)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.asarray(self.keys[at] == keys)


class MatchCache:
    """Recent filters' matches for one collection; safe to use from several reader threads."""

    def __init__(self, store: DocumentStore, dimension: int, max_bytes: int = MAX_BYTES) -> None:
        self._store = store
        self._dimension = dimension
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, tuple[object, ...]], Matches] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        # One scan per filter at a time: the searches that arrive meanwhile wait for it, not scan too
        # (at 100 searches/s a 50 ms scan would otherwise run five times over, each slower for the others).
        self._scanning = [threading.Lock() for _ in range(16)]

    def fresh(self, flt: Filter, marks: tuple[int, int]) -> Matches | None:
        """The filter's matches if they are remembered as of exactly `marks` (no database work)."""
        with self._lock:
            entry = self._entries.get((flt.sql, flt.params))
        return entry if entry is not None and entry.marks == marks else None

    def get(self, flt: Filter, marks: tuple[int, int]) -> Matches:
        """The filter's matches as of `marks` (the watermarks the index reflects): remembered, brought up
        to date, or found by one scan."""
        key = (flt.sql, flt.params)
        entry = self._lookup(key)
        if entry is not None and entry.marks == marks:
            return entry
        with self._scanning[hash(key) % len(self._scanning)]:
            entry = self._lookup(key)  # another search may have found them while this one waited
            if entry is not None and entry.marks == marks:
                return entry
            updated = self._update(entry, flt, marks) if entry is not None else None
            matches = updated if updated is not None else self._scan(flt, marks)
            self._remember(key, matches)
        return matches

    def _lookup(self, key: tuple[str, tuple[object, ...]]) -> Matches | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        return entry

    def _scan(self, flt: Filter, marks: tuple[int, int]) -> Matches:
        keys = self._store.filter_keys(flt, 0, marks[0])
        vectors = None
        if len(keys) <= EXACT_UP_TO:
            keys, vectors = self._store.vectors_of(keys, self._dimension)
        return Matches(marks, keys, vectors)

    def _update(self, entry: Matches, flt: Filter, marks: tuple[int, int]) -> Matches | None:
        """`entry` brought forward to `marks`; None when the removals in between are no longer all recorded."""
        if marks[0] < entry.marks[0] or marks[1] < entry.marks[1]:
            return None  # an older state (a slow reader): scan rather than reason backwards
        removed = self._store.removed_between(entry.marks[1], marks[1])
        if removed is None:
            return None
        added = self._store.filter_keys(flt, entry.marks[0], marks[0])
        kept = ~np.isin(entry.keys, removed) if len(removed) else np.ones(len(entry.keys), dtype=bool)
        # New keys are above every key the entry holds, so appending keeps them sorted.
        keys = np.concatenate([entry.keys[kept], added])
        if len(keys) > EXACT_UP_TO:
            return Matches(marks, keys, None)
        if entry.vectors is None:
            return Matches(marks, *self._store.vectors_of(keys, self._dimension))
        found, new_vectors = self._store.vectors_of(added, self._dimension)
        if len(found) < len(added):  # some deleted since the key look-up: keep the keys the vectors have
            keys = np.concatenate([entry.keys[kept], found])
        return Matches(marks, keys, np.concatenate([entry.vectors[kept], new_vectors]))

    def _remember(self, key: tuple[str, tuple[object, ...]], matches: Matches) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes -= old.nbytes if old is not None else 0
            if matches.nbytes > self._max_bytes:
                return
            self._entries[key] = matches
            self._bytes += matches.nbytes
            while self._bytes > self._max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes


# -- searching within a filter's matches (the caller holds the index's lock) ---------------------


def search_within(
    index: VectorIndex, store: DocumentStore, query: np.ndarray, k: int, matches: Matches, max_candidates: int
) -> Ranked:
    """The k best of the filter's matches. Few matches are scored exactly, all of them; otherwise one
    HNSW round sized by the filter's selectivity, widened while fewer than k pass, and if the
    candidates reach `max_candidates` (the matches lie far from the query), exact search over the
    matches. Either way k come back if k match."""
    if matches.vectors is not None:
        return index.exact(query, matches.keys, matches.vectors, k)
    count = first_round(index, matches, k)
    while (found := one_round(index, query, k, matches, count)) is None:
        if count >= max_candidates:
            keys, vectors = store.vectors_of(matches.keys, index.dimension)
            return index.exact(query, keys, vectors, k)
        count = min(len(index), max_candidates, count * 2)
    return found


def first_round(index: VectorIndex, matches: Matches, k: int) -> int:
    """Index candidates a filtered search asks for first: enough for k to pass at the filter's selectivity."""
    total = len(index)
    expected = math.ceil(k * total / max(len(matches.keys), 1) * OVERFETCH)
    return min(total, max(4 * k, 64, expected))


def one_round(index: VectorIndex, query: np.ndarray, k: int, matches: Matches, count: int) -> Ranked | None:
    """The best k among `count` index candidates that are matches; None if fewer than k of them are
    (and the index holds more than `count`)."""
    keys, scores = index.search(query, count)
    keep = matches.contains(keys)
    if int(keep.sum()) < k and count < len(index):
        return None
    return keys[keep][:k], scores[keep][:k]
