"""The sync and async clients against a real gateway and worker."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from akidb_client import AkiDB, AsyncAkiDB, BadRequest, Conflict, Doc, NotFound

from tests.server import Server

DIM = 384  # the default model's: a collection takes its model's dimension


def test_embed_models_health(db: AkiDB) -> None:
    out = db.embed(["Machine learning is a subset of AI", "Paris is in France"])
    assert out.vectors.shape == (2, out.dimension) and out.vectors.dtype == np.float32
    assert out.total_tokens > 0
    assert np.allclose(np.linalg.norm(out.vectors, axis=1), 1, atol=1e-3)
    assert db.embed("one").vectors.shape == (1, out.dimension)
    models = db.models()
    assert any(m.default and m.dimension == out.dimension and m.workers >= 1 for m in models)
    assert db.health().status == "ok"


def test_collections_lifecycle(db: AkiDB, name: str) -> None:
    created = db.collections.create(name, metric="cosine")
    assert created.name == name and created.document_count == 0 and created.id.startswith("col_")
    assert db.collections.get(name) == db.collections.get(created.id)
    assert name in [c.name for c in db.collections.list()]
    with pytest.raises(Conflict) as err:
        db.collections.create(name)
    assert err.value.code == "collection_exists"
    assert db.collections.delete(name) == created.id
    with pytest.raises(NotFound) as missing:
        db.collections.get(name)
    assert missing.value.code == "collection_not_found" and missing.value.status == 404


def test_documents_and_search(db: AkiDB, name: str) -> None:
    db.collections.create(name)
    col = db.collection(name)
    stored = col.add(
        [
            {
                "id": "ml",
                "text": "Machine learning is a subset of artificial intelligence",
                "metadata": {"topic": "ai"},
            },
            Doc("Paris is the capital of France", id="paris", metadata={"topic": "geo"}),
            {"text": "an id is generated for me"},
        ]
    )
    assert [s.vector_generated for s in stored] == [True, True, True] and len(stored[2].id) == 32
    assert col.count() == 3
    hits = col.search("What is machine learning?", k=2)
    assert hits[0].id == "ml" and hits.query_embedded and hits.took_ms >= 0
    assert hits[0].metadata == {"topic": "ai"} and hits[0].text.startswith("Machine")
    geo = col.search("What is machine learning?", k=3, filter={"topic": "geo"}, include=[])
    assert [h.id for h in geo] == ["paris"] and geo[0].text is None
    doc = col.get("ml", include_vector=True)
    assert doc.vector is not None and doc.vector.dtype == np.float32 and doc.vector_generated
    by_vector = col.search(vector=doc.vector, k=1, include=["vector"])
    assert by_vector[0].id == "ml" and not by_vector.query_embedded and by_vector[0].vector is not None
    col.upsert([{"id": "ml", "text": "replaced", "metadata": {"v": 2}}])
    assert col.get("ml").text == "replaced" and col.count() == 3
    with pytest.raises(ValueError, match="upsert needs an id"):
        col.upsert([{"text": "no id"}])
    col.delete(["ml", "paris"])
    with pytest.raises(NotFound) as err:
        col.get("ml")
    assert err.value.code == "document_not_found"
    assert col.count() == 1
    with pytest.raises(BadRequest) as bad:
        col.search(vector=[1.0, 2.0], k=1)
    assert bad.value.code == "dimension_mismatch"


def test_pages_cover_every_document(db: AkiDB, name: str) -> None:
    db.collections.create(name, metric="l2")
    col = db.collection(name)
    col.add([Doc(id=f"d{i}", vector=np.full(DIM, i, dtype=np.float32)) for i in range(25)])
    first = col.page(limit=10)
    assert first.total == 25 and len(first.documents) == 10 and first.next is not None
    assert [d.id for d in col.documents(page_size=7)] == [f"d{i}" for i in range(25)]


def generate(n: int, bad: set[int]) -> Iterator[dict[str, object]]:
    """A generator, so add_documents cannot know (or hold) the whole stream."""
    for i in range(n):
        yield {"id": f"g{i}", "vector": [1.0, 2.0] if i in bad else [float(i)] * DIM, "metadata": {"i": i}}


def test_add_documents_streams_and_reports_bad_rows(db: AkiDB, name: str) -> None:
    db.collections.create(name, metric="l2")
    col = db.collection(name)
    report = col.add_documents(generate(300, bad={5, 250}), batch_size=32, concurrency=3, progress=False)
    assert report.inserted == 298 and report.skipped == 0
    assert sorted((f.ref, f.id, f.code) for f in report.failed) == [
        (5, "g5", "dimension_mismatch"),
        (250, "g250", "dimension_mismatch"),
    ]
    assert f"got 2, expected {DIM}" in report.failed[0].message
    assert col.count() == 298
    again = col.add_documents(
        generate(300, bad=set()), batch_size=64, progress=False, skip_ids={d.id for d in col.documents()}
    )
    assert (again.inserted, again.skipped, again.failed) == (2, 298, [])


def test_text_documents_are_embedded_in_concurrent_batches(db: AkiDB, name: str) -> None:
    db.collections.create(name)
    texts = (f"document number {i} about topic {i % 7}" for i in range(120))
    report = db.collection(name).add_documents(
        ({"text": t} for t in texts), batch_size=16, concurrency=4, progress=False
    )
    assert (report.inserted, report.failed) == (120, [])


async def test_async_client(server: Server, name: str) -> None:
    async with AsyncAkiDB(server.url) as db:
        await db.collections.create(name)
        col = db.collection(name)
        await col.add([{"id": "ml", "text": "Machine learning is a subset of artificial intelligence"}])
        report = await col.add_documents(
            ({"id": f"a{i}", "text": f"text {i}"} for i in range(40)), batch_size=8, progress=False
        )
        assert report.inserted == 40
        assert await col.count() == 41
        hits = await col.search("What is machine learning?", k=1)
        assert hits[0].id == "ml"
        assert len([d async for d in col.documents(page_size=10)]) == 41
        assert (await db.embed(["x"])).vectors.shape[0] == 1
        await db.collections.delete(name)
        with pytest.raises(NotFound):
            await col.count()
