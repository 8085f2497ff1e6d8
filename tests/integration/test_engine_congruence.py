"""Both storage engines behind the seam, held to the same calls and the same answers (qdrant-client's
congruence tests): documents, replacement and deletion, pages, the filter case table, dense, keyword and
hybrid search. No worker: vectors are given. Each engine is opened from the config, as the gateway does."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from gateway.storage.engine import Catalogue, CollectionInfo, CollectionStore, NewDocument, TextQuery
from gateway.storage.errors import CollectionExists, CollectionNotFound
from gateway.storage.filters import parse_filter
from gateway.storage.index import IndexParams
from tests.support.engines import BOTH_ENGINES
from tests.support.filter_cases import CASES, ROWS

pytestmark = BOTH_ENGINES

DIM = 16
ALL = frozenset(("text", "metadata", "vector"))


def describe(name: str, metric: str = "cosine") -> CollectionInfo:
    return CollectionInfo(
        id=f"col_{name}",
        name=name,
        dimension=DIM,
        metric=metric,
        model="all-MiniLM-L6-v2",
        pooling="mean",
        normalize=True,
        index=IndexParams(16, 128, 128, "f32"),  # f32 on both: scores compare to float noise
        created_at=time.time(),
    )


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def doc(doc_id: str, seed: int, text: str | None = None, metadata: Any = None) -> NewDocument:
    meta = None if metadata is None else json.dumps(metadata)
    return NewDocument(doc_id, text, meta, unit(seed), False)


async def test_documents_are_replaced_deleted_and_paged_in_insertion_order(catalogue: Catalogue) -> None:
    col = await catalogue.create(describe("docs"))
    await col.upsert([doc(f"d{i}", i, f"text {i}") for i in range(5)])
    await col.upsert([doc("d1", 99, "replaced")])  # a replaced document moves to the end
    assert await col.delete("d3") is True
    assert await col.delete("d3") is False
    page, total = await col.page(0, 10, with_vector=False)
    assert [d.doc_id for d in page] == ["d0", "d2", "d4", "d1"] and total == 4 == await col.count()
    second, _ = await col.page(page[1].key, 2, with_vector=False)
    assert [d.doc_id for d in second] == ["d4", "d1"]
    got = await col.get("d1", with_vector=True)
    assert got is not None and got.text == "replaced" and got.vector is not None
    assert np.allclose(np.frombuffer(got.vector, dtype=np.float32), unit(99), atol=1e-6)
    assert await col.get("d3", with_vector=False) is None


async def test_a_name_is_taken_once_and_a_deleted_collection_refuses_requests(catalogue: Catalogue) -> None:
    col = await catalogue.create(describe("once"))
    with pytest.raises(CollectionExists):
        await catalogue.create(describe("once"))
    assert catalogue.get("once") is catalogue.get("col_once")
    assert [c.info.name for c in catalogue.opened()] == ["once"]
    await catalogue.delete("once")
    assert col.closed
    with pytest.raises(CollectionNotFound):
        catalogue.get("once")
    with pytest.raises(CollectionNotFound):
        await col.count()


@pytest.mark.parametrize(("spec", "expected"), CASES)
async def test_the_filter_table_holds_for_dense_search(catalogue: Catalogue, spec: Any, expected: set[str]) -> None:
    name = "f" + str(abs(hash(json.dumps(spec, sort_keys=True))) % 10**8)
    col = await catalogue.create(describe(name))
    await col.upsert([doc(k, i, f"row {k}", v) for i, (k, v) in enumerate(ROWS.items())])
    hits = await col.search(unit(1000), len(ROWS), parse_filter(spec), frozenset(("metadata",)))
    assert {h.doc.doc_id for h in hits} == expected


async def dense_keyword_hybrid(col: CollectionStore) -> tuple[list[Any], ...]:
    texts = ["the cat sat on the mat", "dogs chase cats", "a bird in the hand", "cats and dogs", "mat finish"]
    await col.upsert([doc(f"t{i}", i, t, {"i": i}) for i, t in enumerate(texts)])
    query = unit(2)
    dense = await col.search(query, 3, None, ALL)
    inline = col.search_inline(query, 3, None, ALL)
    keyword = await col.keyword_search(TextQuery("mat"), 5, None, ALL)
    hybrid = await col.hybrid_search(query, TextQuery("cat"), 3, parse_filter({"i": {"$lt": 4}}), 0.5, ALL)
    return dense, inline, keyword, hybrid


async def test_dense_keyword_and_hybrid_rank_alike(catalogue: Catalogue, engine: str) -> None:
    dense, inline, keyword, hybrid = await dense_keyword_hybrid(await catalogue.create(describe("rank")))
    brute = sorted(range(5), key=lambda i: -float(unit(i) @ unit(2)))[:3]
    assert [h.doc.doc_id for h in dense] == [f"t{i}" for i in brute]
    assert [round(h.score, 4) for h in dense] == [round(float(unit(i) @ unit(2)), 4) for i in brute]
    # The embedded engine may answer on the calling thread; the PostgreSQL one never does.
    assert (
        inline is None
        if engine == "postgres"
        else [h.doc.doc_id for h in inline or []] == [h.doc.doc_id for h in dense]
    )
    assert {h.doc.doc_id for h in keyword} == {"t0", "t4"}  # BM25 and ts_rank_cd may order them differently
    assert {h.doc.doc_id for h in hybrid} <= {"t0", "t1", "t2", "t3"} and hybrid[0].ranks is not None


async def test_both_engines_restore_and_reembed_only_postgres_leases(catalogue: Catalogue, engine: str) -> None:
    col = await catalogue.create(describe("features"))
    catalogue.check_restorable()  # both restore snapshots (test_engine_migration.py)
    assert col.reembedding() is not None  # both engines re-embed; only PostgreSQL's jobs are leased
    assert col.reembedding().leased == (engine == "postgres")
