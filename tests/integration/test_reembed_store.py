"""Re-embedding's storage on a real disk: the catch-up walk, the swap in one commit, cancel, refusals. No worker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from gateway.storage import reembed as store
from gateway.storage.collection import Collection
from gateway.storage.db import NewDocument
from gateway.storage.errors import JobConflict, ModelChanged, VectorOnlyDocuments
from gateway.storage.index import VectorIndex, snapshots
from tests.integration.test_collection_store import DIM, docs, make, reopen

NEW_DIM = 8


def new_vectors(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, NEW_DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def started(col: Collection, drop: bool = False) -> store.JobRecord:
    store.ensure_schema(col)
    return store.start(col, "job_1", "tiny-qwen3", "last", NEW_DIM, drop)


def embed_all_after(col: Collection, record: store.JobRecord, staged: VectorIndex, after: int) -> int:
    """What the job does for a page: every document above `after`, with text, gets a new vector."""
    page = store.pending(col, after, 10_000)
    keys = [k for k, t in zip(page.keys, page.texts, strict=True) if t is not None]
    store.store_batch(col, record.id, staged, keys, new_vectors(len(keys), seed=after), page.keys[-1])
    return page.keys[-1]


def test_the_walk_catches_up_and_the_swap_changes_model_dimension_and_vectors(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert(docs(50))
    col.snapshot()  # an old-dimension snapshot the swap must remove
    old_info = col.info
    record = started(col)
    staged = VectorIndex(NEW_DIM, "cosine", col.info.index)
    first = store.pending(col, 0, 30)
    store.store_batch(col, record.id, staged, first.keys, new_vectors(30), first.keys[-1])
    # During the job: a new document, a delete in the done part, a replacement in the part to come.
    col.upsert(docs(5, start=100))
    col.delete("d3")
    col.upsert(docs(1, start=40, seed=9))
    assert not store.swap(col, dataclasses.replace(record, last_key=first.keys[-1]), staged, "last")
    assert col.info.dimension == DIM  # nothing changed: the job has documents left
    last = embed_all_after(col, record, staged, first.keys[-1])
    assert store.swap(col, dataclasses.replace(record, last_key=last), staged, "last")

    assert (col.info.model, col.info.dimension, col.info.pooling) == ("tiny-qwen3", NEW_DIM, "last")
    assert len(col.index) == 54 and not snapshots(col.folder)
    hits = col.search(new_vectors(1, seed=7)[0], 5, None, 100, with_vector=True)
    assert len(hits) == 5 and all(len(h.doc.vector or b"") == NEW_DIM * 4 for h in hits)
    with pytest.raises(ModelChanged):
        col.search(np.ones(DIM, dtype=np.float32), 5, None, 100, with_vector=False)
    stale = NewDocument("late", "text", None, np.ones(DIM, dtype=np.float32), True)
    with pytest.raises(ModelChanged):  # embedded for the old model, arriving after the swap
        col.upsert([stale], old_info)
    assert store.job(col, record.id).state == store.DONE
    col.close(save=True)

    again = reopen(tmp_path / "c")
    try:
        assert (again.info.model, again.info.dimension, len(again.index)) == ("tiny-qwen3", NEW_DIM, 54)
        assert again.get("d3", False) is None and again.get("d104", True) is not None
        with again.store.reading() as conn:
            assert conn.execute("SELECT COUNT(*) FROM reembed_vectors").fetchone()[0] == 0
            assert conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 54
            assert conn.execute("SELECT MIN(length(vector)) FROM vectors").fetchone()[0] == NEW_DIM * 4
    finally:
        again.close(save=False)


def test_cancel_leaves_vectors_and_description_as_they_were(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert(docs(20))
    before = col.get("d5", True)
    record = started(col)
    embed_all_after(col, record, VectorIndex(NEW_DIM, "cosine", col.info.index), 0)
    store.finish(col, record.id, store.CANCELLED)
    assert store.job(col, record.id).state == store.CANCELLED
    assert col.info.dimension == DIM and col.get("d5", True) == before
    with col.store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM reembed_vectors").fetchone()[0] == 0
    col.close(save=False)


def test_refusals_vector_only_documents_and_a_second_job(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert([*docs(3), NewDocument("v", None, None, np.ones(DIM, dtype=np.float32) / 4, False)])
    store.ensure_schema(col)
    with pytest.raises(VectorOnlyDocuments, match="1 document"):
        store.start(col, "job_1", "tiny-qwen3", None, NEW_DIM, False)
    record = started(col, drop=True)
    assert record.vector_only == 1
    with pytest.raises(JobConflict):
        store.start(col, "job_2", "tiny-qwen3", None, NEW_DIM, True)
    staged = VectorIndex(NEW_DIM, "cosine", col.info.index)
    last = embed_all_after(col, record, staged, 0)
    assert store.swap(col, dataclasses.replace(record, last_key=last), staged, None)
    assert store.job(col, record.id).dropped == 1 and col.get("v", False) is None and len(col.index) == 3
    col.close(save=False)
