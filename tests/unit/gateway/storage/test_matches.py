"""The per-collection memory of filters' matches, on a real SQLite store: scans, updates, bounds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from gateway.storage import matches as matches_module
from gateway.storage.db import DocumentStore, NewDocument
from gateway.storage.filters import compile_filter
from gateway.storage.matches import MatchCache

DIM = 4
ODD = compile_filter({"odd": 1})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DocumentStore]:
    s = DocumentStore(tmp_path)
    yield s
    s.close()


def new(doc_id: str, n: int) -> NewDocument:
    return NewDocument(doc_id, None, json.dumps({"odd": n % 2, "n": n}), np.full(DIM, n, dtype=np.float32), False)


def put(store: DocumentStore, *docs: NewDocument) -> tuple[int, int]:
    result = store.upsert(docs, np.stack([d.vector for d in docs]))
    return result.marks


def odd_keys(store: DocumentStore) -> list[int]:
    """The truth, asked of SQLite directly."""
    return sorted(int(k) for k in store.filter_keys(ODD, 0, 2**62))


def test_a_scan_finds_the_matches_with_their_vectors(store: DocumentStore) -> None:
    marks = put(store, *(new(f"d{i}", i) for i in range(10)))
    got = MatchCache(store, DIM).get(ODD, marks)
    assert got.keys.tolist() == odd_keys(store) and len(got.keys) == 5
    assert got.vectors is not None and got.vectors[:, 0].tolist() == [1, 3, 5, 7, 9]
    assert got.contains(np.array([2, 3, 99], dtype=np.uint64)).tolist() == [True, False, False]


def test_remembered_matches_are_reused_then_brought_up_to_date(store: DocumentStore) -> None:
    cache = MatchCache(store, DIM)
    marks = put(store, *(new(f"d{i}", i) for i in range(10)))
    first = cache.get(ODD, marks)
    assert cache.get(ODD, marks) is first and cache.fresh(ODD, marks) is first
    store.delete("d3")
    marks = put(store, new("d5", 6), new("d11", 11))  # d5 replaced by an even one, d11 new and odd
    assert store.watermarks() == marks
    assert cache.fresh(ODD, marks) is None  # stale: a search on the event loop must not look it up
    updated = cache.get(ODD, marks)
    assert updated.marks == marks and updated.keys.tolist() == odd_keys(store)
    assert updated.vectors is not None and sorted(updated.vectors[:, 0].tolist()) == [1, 7, 9, 11]


def test_forgotten_removals_mean_a_new_scan(store: DocumentStore) -> None:
    cache = MatchCache(store, DIM)
    marks = put(store, *(new(f"d{i}", i) for i in range(10)))
    cache.get(ODD, marks)
    store.delete("d1")
    store.delete("d7")
    marks = store.watermarks()
    store.forget_removed(marks[1] - 1)  # a snapshot saved the first removal and forgot its record
    assert store.removed_between(0, marks[1]) is None
    assert cache.get(ODD, marks).keys.tolist() == odd_keys(store)


def test_many_matches_are_kept_without_vectors(store: DocumentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matches_module, "EXACT_UP_TO", 3)
    cache = MatchCache(store, DIM)
    marks = put(store, *(new(f"d{i}", i) for i in range(4)))
    small = cache.get(ODD, marks)
    assert small.vectors is not None and len(small.keys) == 2
    marks = put(store, *(new(f"d{i}", i) for i in range(4, 10)))
    grown = cache.get(ODD, marks)
    assert grown.vectors is None and grown.keys.tolist() == odd_keys(store)
    for doc_id in ("d1", "d3", "d5"):
        store.delete(doc_id)
    shrunk = cache.get(ODD, store.watermarks())
    assert shrunk.vectors is not None and shrunk.vectors[:, 0].tolist() == [7, 9]


def test_the_memory_is_bounded_by_bytes_least_recently_used_first(store: DocumentStore) -> None:
    marks = put(store, *(new(f"d{i}", i) for i in range(10)))
    one = MatchCache(store, DIM).get(ODD, marks).nbytes
    cache = MatchCache(store, DIM, max_bytes=2 * one)
    filters = [compile_filter({"odd": 1, "n": {"$ne": x}}) for x in (100, 101, 102)]
    a, b, c = (cache.get(f, marks) for f in filters)
    assert cache.fresh(filters[0], marks) is None  # the oldest went when the third came
    assert cache.fresh(filters[1], marks) is b and cache.fresh(filters[2], marks) is c
    assert a.keys.tolist() == b.keys.tolist()


def test_searches_arriving_during_a_scan_wait_for_it(store: DocumentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    marks = put(store, *(new(f"d{i}", i) for i in range(10)))
    cache = MatchCache(store, DIM)
    scans = []
    real = store.filter_keys

    def slow(*args: object) -> np.ndarray:
        scans.append(args)
        time.sleep(0.05)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "filter_keys", slow)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: cache.get(ODD, marks), range(8)))
    assert len(scans) == 1 and all(r is results[0] for r in results)
