"""The PostgreSQL engine's catalogue and documents on a real PostgreSQL 18 + pgvector server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from gateway.storage.collection import CollectionInfo, TextQuery
from gateway.storage.db import NewDocument
from gateway.storage.errors import CollectionExists, CollectionNotFound
from gateway.storage.filters import parse_filter
from gateway.storage.index import IndexParams
from gateway.storage.postgres.catalogue import Catalogue, open_pool, prepare
from gateway.storage.postgres.documents import PgDocuments
from gateway.storage.postgres.schema import MIGRATIONS
from tests.support.postgres import start_postgres

DIM = 16
INCLUDE = frozenset(("text", "metadata", "vector"))


@pytest.fixture(scope="module")
def dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_postgres(tmp_path_factory.mktemp("pg"))


@pytest.fixture(scope="module")
def catalogue(dsn: str) -> Iterator[Catalogue]:
    prepare(dsn)
    pool = open_pool(dsn, size=4)
    try:
        yield Catalogue(pool)
    finally:
        pool.close()


_names = iter(range(10_000))


def info(metric: str = "cosine", dtype: str = "bf16", name: str | None = None) -> CollectionInfo:
    n = next(_names)
    return CollectionInfo(
        id=f"col_{n:08x}",
        name=name or f"c{n}",
        dimension=DIM,
        metric=metric,
        model="test",
        pooling=None,
        normalize=metric == "cosine",
        index=IndexParams(connectivity=16, expansion_add=64, expansion_search=64, dtype=dtype),
        created_at=time.time(),
    )


def docs(rng: np.random.Generator, n: int, start: int = 0, unit: bool = True) -> list[NewDocument]:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    if unit:
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        NewDocument(
            doc_id=f"d{start + i}",
            text=f"document {start + i} about {'apples' if (start + i) % 7 == 0 else 'pears'}",
            metadata=json.dumps({"group": (start + i) % 10, "rare": (start + i) % 97 == 0}),
            vector=vectors[i],
            generated=False,
        )
        for i in range(n)
    ]


def exact(stored: list[NewDocument], query: np.ndarray, k: int, metric: str) -> list[str]:
    m = np.stack([d.vector for d in stored])
    order = np.argsort(np.linalg.norm(m - query, axis=1)) if metric == "l2" else np.argsort(-(m @ query))
    return [stored[i].doc_id for i in order[:k]]


@pytest.mark.parametrize(("metric", "dtype"), [("cosine", "bf16"), ("ip", "f32"), ("l2", "f16")])
def test_dense_search_finds_the_exact_neighbours_and_scores_like_the_embedded_engine(
    catalogue: Catalogue, metric: str, dtype: str
) -> None:
    rng = np.random.default_rng(1)
    col = catalogue.create(info(metric, dtype))
    stored = docs(rng, 600, unit=metric == "cosine")
    col.upsert(stored)
    by_id = {d.doc_id: d for d in stored}
    found = 0
    for q in rng.standard_normal((20, DIM)).astype(np.float32):
        if metric == "cosine":
            q /= np.linalg.norm(q)
        hits = col.search(q, 10, None, INCLUDE)
        assert len(hits) == 10
        found += len({h.doc.doc_id for h in hits} & set(exact(stored, q, 10, metric)))
        top = hits[0]
        v = by_id[top.doc.doc_id].vector
        want = float(np.linalg.norm(v - q)) if metric == "l2" else float(v @ q)
        assert top.score == pytest.approx(want, abs=1e-4)  # scored on the f32 vector, not the index's copy
        assert np.frombuffer(top.doc.vector or b"", dtype=np.float32).tolist() == pytest.approx(v.tolist())
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=metric != "l2")
    assert found / 200 >= 0.95


def test_a_filtered_search_returns_k_whenever_k_match(catalogue: Catalogue) -> None:
    rng = np.random.default_rng(2)
    col = catalogue.create(info())
    stored = docs(rng, 2000)
    col.upsert(stored)
    q = stored[5].vector
    rare = [d for d in stored if json.loads(d.metadata or "{}")["rare"]]  # 21 of 2,000
    hits = col.search(q, 10, parse_filter({"rare": True}), INCLUDE)
    assert [h.doc.doc_id for h in hits] == exact(rare, q, 10, "cosine")
    few = parse_filter({"$and": [{"rare": True}, {"group": {"$in": [0, 1]}}]})
    matching = [d for d in rare if json.loads(d.metadata or "{}")["group"] in (0, 1)]
    assert 0 < len(matching) < 10
    assert {h.doc.doc_id for h in col.search(q, 10, few, INCLUDE)} == {d.doc_id for d in matching}
    half = col.search(q, 10, parse_filter({"group": {"$lt": 5}}), INCLUDE)
    assert len(half) == 10 and all(json.loads(h.doc.metadata or "{}")["group"] < 5 for h in half)


def test_upsert_replaces_and_a_bad_batch_stores_nothing(catalogue: Catalogue) -> None:
    rng = np.random.default_rng(3)
    col = catalogue.create(info())
    col.upsert(docs(rng, 10))
    before = col.get("d3", with_vector=False)
    assert before is not None
    replacement = docs(rng, 1, start=3)[0]
    col.upsert([NewDocument("d3", "replaced", None, replacement.vector, True)])
    after = col.get("d3", with_vector=False)
    assert after is not None and after.text == "replaced" and after.metadata is None and after.generated
    assert after.key > before.key  # a new row, last in insertion order, as in the embedded engine
    page, total = col.page(0, 100, with_vector=False)
    assert total == 10 and page[-1].doc_id == "d3"
    wrong = NewDocument("d99", "x", None, np.ones(DIM + 1, dtype=np.float32), False)
    with pytest.raises(psycopg.errors.DataException):
        col.upsert([*docs(rng, 3, start=50), wrong])
    assert col.count() == 10 and col.get("d50", with_vector=False) is None
    with pytest.raises(ValueError, match="same doc_id twice"):
        col.upsert(docs(rng, 1, start=1) + docs(rng, 1, start=1))
    assert col.delete("d3") and not col.delete("d3")
    assert col.count() == 9


def test_keyword_and_hybrid_search(catalogue: Catalogue) -> None:
    rng = np.random.default_rng(4)
    col = catalogue.create(info())
    stored = docs(rng, 200)
    col.upsert(stored)
    hits = col.keyword_search(TextQuery("apple"), 5, None, INCLUDE)  # stemmed: finds "apples"
    assert len(hits) == 5 and all("apples" in (h.doc.text or "") for h in hits)
    assert [h.ranks for h in hits] == [{"keyword": r} for r in range(1, 6)]
    filtered = col.keyword_search(TextQuery("apple"), 50, parse_filter({"group": 0}), INCLUDE)
    assert filtered and all(json.loads(h.doc.metadata or "{}")["group"] == 0 for h in filtered)
    assert col.keyword_search(TextQuery("-- \"' OR zebra"), 5, None, INCLUDE) == []  # words, never operators
    assert col.keyword_search(TextQuery("apples -document", syntax="websearch"), 5, None, INCLUDE) == []
    fused = col.hybrid_search(stored[14].vector, TextQuery("apples"), 5, None, alpha=0.5, rrf_k=60, include=INCLUDE)
    assert fused[0].doc.doc_id == "d14"  # first in both lists (14 is a multiple of 7, and the vector's own)
    assert fused[0].ranks == {"dense": 1, "keyword": fused[0].ranks["keyword"]}


def test_two_gateways_creating_one_name_give_one_collection(catalogue: Catalogue, dsn: str) -> None:
    other = Catalogue(open_pool(dsn, size=2))
    results: list[Any] = []

    def create(cat: Catalogue) -> None:
        try:
            results.append(cat.create(info(name="contested")))
        except CollectionExists as exc:
            results.append(exc)

    try:
        threads = [threading.Thread(target=create, args=(c,)) for c in (catalogue, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(type(r).__name__ for r in results) == ["CollectionExists", "PgDocuments"]
        assert [i.name for i in other.list()].count("contested") == 1
        generation = other.generation()
        catalogue.delete("contested")
        assert other.generation() > generation
        with pytest.raises(CollectionNotFound):
            other.get("contested")
    finally:
        other.pool.close()


def test_migrations_run_once_when_gateways_start_together(dsn: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            prepare(dsn)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(dsn) as conn:
        # each migration once, in order, whichever gateway ran it
        versions = [v for (v,) in conn.execute("SELECT version FROM akidb_schema ORDER BY version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_a_collection_survives_a_new_pool(catalogue: Catalogue, dsn: str) -> None:
    rng = np.random.default_rng(5)
    made = catalogue.create(info())
    made.upsert(docs(rng, 5))
    pool: ConnectionPool[Any] = open_pool(dsn, size=1)
    try:
        again = Catalogue(pool).get(made.info.name)
        assert isinstance(again, PgDocuments) and again.info == made.info and again.count() == 5
    finally:
        pool.close()
