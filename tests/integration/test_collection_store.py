"""A collection on a real disk: SQLite + USearch, snapshots and replay, filtered search. No worker."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from gateway.metrics import LATENCY_BUCKETS
from gateway.storage import matches
from gateway.storage.collection import Collection, CollectionInfo
from gateway.storage.db import NewDocument
from gateway.storage.errors import CollectionNotFound
from gateway.storage.filters import compile_filter
from gateway.storage.index import IndexParams, snapshots
from gateway.storage.metrics import StorageMetrics

DIM = 16


def make(folder: Path, snapshot_every: int = 10_000, metric: str = "cosine") -> Collection:
    info = CollectionInfo(
        id="col_test",
        name="test",
        dimension=DIM,
        metric=metric,
        model="all-MiniLM-L6-v2",
        pooling="mean",
        normalize=True,
        index=IndexParams(16, 128, 128, "f32"),
        created_at=time.time(),
    )
    folder.mkdir(exist_ok=True)
    Collection.initialise(folder, info)
    return reopen(folder, snapshot_every)


def reopen(folder: Path, snapshot_every: int = 10_000) -> Collection:
    return Collection.open(folder, snapshot_every, StorageMetrics(CollectorRegistry(), LATENCY_BUCKETS))


def docs(n: int, start: int = 0, seed: int = 0, **meta: object) -> list[NewDocument]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        NewDocument(
            f"d{start + i}",
            f"text {start + i}",
            json.dumps({"n": start + i, "odd": (start + i) % 2, **meta}),
            vectors[i],
            False,
        )
        for i in range(n)
    ]


def top(col: Collection, query: np.ndarray, k: int = 10, flt: dict | None = None) -> list[tuple[str, float]]:
    hits = col.search(query, k, compile_filter(flt), max_candidates=50, with_vector=False)
    return [(h.doc.doc_id, round(h.score, 5)) for h in hits]


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def test_upsert_replaces_and_delete_removes(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert(docs(20))
    first = col.get("d3", with_vector=True)
    assert first is not None and first.text == "text 3"
    replacement = NewDocument("d3", "new text", None, unit(99), True)
    col.upsert([replacement])
    again = col.get("d3", with_vector=True)
    assert again is not None and again.text == "new text" and again.generated and again.key != first.key
    np.testing.assert_allclose(np.frombuffer(again.vector or b"", np.float32), unit(99))
    assert len(col.index) == 20 and col.store.count() == 20
    assert top(col, unit(99), 1) == [("d3", 1.0)]
    assert col.delete("d3") and not col.delete("d3")
    assert col.get("d3", False) is None and len(col.index) == 19
    assert "d3" not in [d for d, _ in top(col, unit(99), 19)]
    col.close(save=False)


def test_a_batch_replacing_some_documents_keeps_keys_and_removals_in_order(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert(docs(5))
    col.delete("d4")  # key 5 is used and gone: new keys must not reuse it
    col.upsert([*docs(2, start=1, seed=7), *docs(2, start=10, seed=8)])  # replaces d1, d2; adds d10, d11
    keys = {d: col.get(d, False).key for d in ("d0", "d1", "d2", "d3", "d10", "d11")}  # type: ignore[union-attr]
    assert keys == {"d0": 1, "d3": 4, "d1": 6, "d2": 7, "d10": 8, "d11": 9}
    assert col.store.removed_after(0) == [5, 2, 3] and col.marks == (9, 3)
    assert len(col.index) == 6 and col.store.count() == 6
    col.close(save=False)
    again = reopen(tmp_path / "c")  # replay from the database alone finds the same documents
    assert top(again, docs(2, start=1, seed=7)[0].vector, 1) == [("d1", 1.0)]
    assert len(again.index) == 6
    again.close(save=False)


def test_search_now_answers_as_search_does_or_declines(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert(docs(50))
    query = unit(5)
    slow = col.search(query, 10, None, 50, with_vector=True)
    now = col.search_now(query, 10, None, frozenset(("text", "metadata", "vector")))
    assert now == slow
    bare = col.search_now(query, 10, None, frozenset())
    assert bare is not None and [h.doc.doc_id for h in bare] == [h.doc.doc_id for h in slow]
    assert all(h.doc.text is None and h.doc.metadata is None and h.doc.vector is None for h in bare)
    odd = compile_filter({"odd": 1})
    assert col.search_now(query, 10, odd, frozenset()) is None  # a filter not looked up yet: a thread's job
    filtered = col.search(query, 10, odd, 50, with_vector=False)  # ...which remembers its matches
    assert col.search_now(query, 10, odd, frozenset(("text", "metadata"))) == filtered
    col.upsert(docs(1, start=50))
    assert col.search_now(query, 10, odd, frozenset()) is None  # the matches predate the write
    assert col.search_now(query, 101, None, frozenset()) is None  # large k: a thread's job
    with col.index.lock.exclusive():  # an index change in progress: the event loop must not wait for it
        assert col.search_now(query, 10, None, frozenset()) is None
    col.close(save=False)
    assert col.search_now(query, 10, None, frozenset()) is None  # closed: the reader thread's search says so
    with pytest.raises(CollectionNotFound):
        col.search(query, 10, None, 50, with_vector=False)


def test_a_failed_batch_stores_nothing(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert(docs(5))
    # The fourth row cannot be bound, after three were written inside the transaction.
    bad = [*docs(3, start=100), NewDocument("d200", None, {"not": "text"}, unit(1), False)]  # type: ignore[arg-type]
    with pytest.raises(Exception, match="binding parameter"):
        col.upsert(bad)
    with pytest.raises(ValueError, match="same doc_id twice"):
        col.upsert([*docs(2), *docs(1)])
    assert col.store.count() == 5 and len(col.index) == 5
    assert col.get("d100", False) is None
    col.close(save=False)


def test_reopen_without_snapshot_replays_everything(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert(docs(200))
    col.delete("d7")
    before = top(col, unit(5), 10)
    col.close(save=False)  # what kill -9 leaves: the database, no snapshot
    assert snapshots(tmp_path / "c") == []
    col = reopen(tmp_path / "c")
    assert len(col.index) == 199
    assert top(col, unit(5), 10) == before
    col.close(save=False)


def test_reopen_loads_the_snapshot_and_replays_only_later_changes(tmp_path: Path) -> None:
    col = make(tmp_path / "c", snapshot_every=100)
    col.upsert(docs(150))  # 150 changes >= 100: a snapshot is written, in the background
    col.wait_for_snapshot()
    [snap] = snapshots(tmp_path / "c")
    assert snap.last_key == 150
    col.upsert(docs(10, start=150))
    col.delete("d0")  # in the snapshot, removed after it
    col.upsert([NewDocument("d1", "moved", None, unit(42), False)])  # replaced after it
    before = top(col, unit(42), 10)
    col.close(save=False)
    col = reopen(tmp_path / "c")
    assert col.changes == 10 + 1 + 1 + 1  # replayed rows + removals, not the 150 in the snapshot
    assert len(col.index) == 159
    assert top(col, unit(42), 10) == before
    assert before[0] == ("d1", 1.0)
    col.close(save=True)
    [snap] = snapshots(tmp_path / "c")
    assert (snap.last_key, snap.last_removal) == (161, 2)
    assert reopen(tmp_path / "c").changes == 0


def test_a_broken_snapshot_falls_back_to_a_rebuild(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert(docs(50))
    before = top(col, unit(3))
    col.close(save=True)
    [snap] = snapshots(tmp_path / "c")
    snap.path.write_bytes(b"not an index")
    (tmp_path / "c" / "index-99-0.usearch.tmp").write_bytes(b"half written")
    col = reopen(tmp_path / "c")
    assert len(col.index) == 50 and top(col, unit(3)) == before
    assert not (tmp_path / "c" / "index-99-0.usearch.tmp").exists()
    col.close(save=False)


@pytest.mark.parametrize("exact_up_to", [4096, 0], ids=["exact", "index"])
@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_filtered_search_returns_k_and_matches_brute_force(
    tmp_path: Path, metric: str, exact_up_to: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways a filter's matches are searched: all scored exactly, or index rounds (widened to exact)."""
    monkeypatch.setattr(matches, "EXACT_UP_TO", exact_up_to)
    col = make(tmp_path / "c", metric=metric)
    col.upsert(docs(400))
    vectors = {d.doc_id: d.vector for d in docs(400)}
    query = unit(11)
    for flt, k in [({"odd": 1}, 20), ({"n": {"$in": list(range(0, 400, 37))}}, 10), ({"n": {"$lt": 30}}, 25)]:
        got = top(col, query, k, flt)
        passing = [d for d in vectors if flt_match(flt, int(d[1:]))]
        expected = sorted(passing, key=lambda d: score(metric, vectors[d], query), reverse=metric != "l2")
        assert len(got) == min(k, len(passing))
        assert [d for d, _ in got] == expected[: len(got)]
    assert top(col, query, 10, {"n": -1}) == []
    col.close(save=False)


@pytest.mark.parametrize("exact_up_to", [4096, 0], ids=["exact", "index"])
def test_filtered_search_follows_writes(tmp_path: Path, exact_up_to: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filter's remembered matches follow inserts, replacements and deletions, also across a snapshot that
    forgets removal records: each search answers as brute force over what is stored then."""
    monkeypatch.setattr(matches, "EXACT_UP_TO", exact_up_to)
    col = make(tmp_path / "c")
    stored = {d.doc_id: d for d in docs(300)}
    col.upsert(list(stored.values()))
    query = unit(21)
    flt = {"odd": 1}

    def check() -> None:
        got = [d for d, _ in top(col, query, 15, flt)]
        passing = [d for d in stored.values() if json.loads(d.metadata or "{}").get("odd") == 1]
        expected = sorted(passing, key=lambda d: float(d.vector @ query), reverse=True)
        assert got == [d.doc_id for d in expected[:15]]

    check()
    near = NewDocument("near", None, json.dumps({"odd": 1}), query, False)  # the best match from now on
    stored["near"] = near
    col.upsert([near])
    check()
    for doc_id in ("near", "d1", "d3"):
        assert col.delete(doc_id)
        del stored[doc_id]
    check()
    # d5 replaced: now even, so it leaves the matches; d6 replaced to become odd and nearest.
    swapped = [NewDocument("d5", None, json.dumps({"odd": 0}), query, False),
               NewDocument("d6", None, json.dumps({"odd": 1}), query, False)]  # fmt: skip
    col.upsert(swapped)
    stored.update({d.doc_id: d for d in swapped})
    check()
    col.snapshot()
    col.wait_for_snapshot()
    assert col.delete("d7")
    del stored["d7"]
    col.snapshot()  # forgets the removal records the remembered matches would need
    col.wait_for_snapshot()
    assert col.delete("d9")
    del stored["d9"]
    check()
    col.close(save=False)


def test_an_empty_collection_answers_filtered_searches_with_nothing(tmp_path: Path) -> None:
    """Nothing stored (or everything deleted): no hits, not an index error (which the API turned into a 500)."""
    col = make(tmp_path / "c")
    assert top(col, unit(1), 5, {"odd": 1}) == []
    col.upsert(docs(2))
    for d in ("d0", "d1"):
        assert col.delete(d)
    assert top(col, unit(1), 5, {"odd": 1}) == []
    assert top(col, unit(1), 5) == []
    col.close(save=False)


def flt_match(flt: dict, n: int) -> bool:
    if "odd" in flt:
        return n % 2 == 1
    if "$in" in flt["n"]:
        return n in flt["n"]["$in"]
    return n < 30


def score(metric: str, v: np.ndarray, q: np.ndarray) -> float:
    return float(np.linalg.norm(v - q)) if metric == "l2" else float(v @ q)


def test_a_deleted_collection_refuses_reads(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert(docs(3))
    col.close(save=False)
    with pytest.raises(CollectionNotFound):
        col.search(unit(1), 1, None, 10, False)
    with pytest.raises(CollectionNotFound):
        col.get("d1", False)
    assert os.path.exists(tmp_path / "c" / "documents.sqlite3")


def test_small_indexes_find_the_exact_neighbours() -> None:
    """Parallel insertion into a small graph missed neighbours in ~1 search of 12; it must not."""
    from gateway.storage.index import VectorIndex

    rng = np.random.default_rng(7)
    for _ in range(30):
        base = rng.standard_normal((300, DIM)).astype(np.float32)
        query = rng.standard_normal(DIM).astype(np.float32)
        index = VectorIndex(DIM, "l2", IndexParams(16, 128, 128, "f32"))
        index.add(np.arange(300, dtype=np.uint64), base)
        with index.lock.shared():
            keys, _ = index.search(query, 10)
        assert list(keys) == list(np.argsort(((base - query) ** 2).sum(axis=1))[:10])
        index.close()


def test_a_folder_without_a_description_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    from gateway.storage.errors import StorageError

    stray = tmp_path / "col_stray"
    stray.mkdir()
    with pytest.raises(StorageError, match="col_stray holds no collection description; move it out"):
        Collection.open(stray, 1000, StorageMetrics(CollectorRegistry(), LATENCY_BUCKETS))
