"""Collections, documents and search over HTTP: the real app, a real MiniLM worker, SQLite on disk."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.storage.datadir import DataDir
from gateway.storage.errors import StorageError
from tests.support.backends import ONE_BACKEND
from tests.support.engines import BOTH_ENGINES, only_on
from tests.support.gateway import Gateway

# Not about the embedding backend: run once, on the fastest installed one.
pytestmark = [ONE_BACKEND, BOTH_ENGINES]

ML_TEXT = "Machine learning is a subset of artificial intelligence"


def as_json(body: Any) -> dict[str, Any]:
    """Request kwargs for a JSON body of any size (aiohttp warns about large raw bodies)."""
    try:
        raw = orjson.dumps(body)
    except TypeError:  # integers beyond 64 bits: the standard library writes them
        raw = json.dumps(body).encode()
    return {"data": io.BytesIO(raw), "headers": {"Content-Type": "application/json"}}


async def post(gw: Gateway, path: str, body: Any, status: int = 200) -> Any:
    resp = await gw.client.post(path, **as_json(body))
    assert resp.status == status, await resp.text()
    return await resp.json()


async def get(gw: Gateway, path: str, status: int = 200) -> Any:
    resp = await gw.client.get(path)
    assert resp.status == status, await resp.text()
    return await resp.json()


def rand_vector(seed: int, dim: int = 384) -> list[float]:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32).tolist()


async def test_the_seed_story(gateway: Gateway) -> None:
    col = await post(gateway, "/collections", {"name": "seed"}, 201)
    assert col["dimension"] == 384 and col["metric"] == "cosine" and col["model"] == "all-MiniLM-L6-v2"
    assert col["id"].startswith("col_")
    ml = await post(gateway, f"/collections/{col['id']}/documents", {"text": ML_TEXT}, 201)
    assert ml["vector_generated"] is True and ml["id"]
    other = await post(
        gateway, "/collections/seed/documents", {"id": "mine", "text": "a user vector", "vector": rand_vector(1)}, 201
    )
    assert other == {"id": "mine", "vector_generated": False}
    found = await post(gateway, "/collections/seed/search", {"query": "What is machine learning?"})
    assert found["query_embedded"] is True
    assert found["results"][0]["id"] == ml["id"]
    assert found["results"][0]["text"] == ML_TEXT
    assert found["results"][0]["score"] > 0.6  # cosine similarity: higher is more similar
    assert found["results"][0]["score"] > found["results"][1]["score"]
    assert isinstance(found["took_ms"], float)
    described = await get(gateway, "/collections/seed")
    assert described["document_count"] == 2
    assert described["index"] == {"connectivity": 16, "expansion_add": 128, "expansion_search": 128, "dtype": "bf16"}


async def test_batches_are_embedded_in_one_call_and_upserts_replace(gateway: Gateway) -> None:
    await post(gateway, "/collections", {"name": "batch"}, 201)
    texts = [f"document number {i} about topic {i % 3}" for i in range(40)]
    jobs_before = await gateway.metric(
        "akidb_embedding_requests_total", model="all-MiniLM-L6-v2", status="ok", transport="collections"
    )
    body = {"documents": [{"id": f"d{i}", "text": t, "metadata": {"topic": i % 3}} for i, t in enumerate(texts)]}
    out = await post(gateway, "/collections/batch/documents", body, 201)
    assert [d["id"] for d in out["documents"]] == [f"d{i}" for i in range(40)]
    assert all(d["vector_generated"] for d in out["documents"])
    jobs_after = await gateway.metric(
        "akidb_embedding_requests_total", model="all-MiniLM-L6-v2", status="ok", transport="collections"
    )
    assert jobs_after - jobs_before == 1  # 40 documents, one embedding request
    # Upsert: same id, new text and metadata; the count stays.
    await post(
        gateway, "/collections/batch/documents", {"id": "d0", "text": "completely new words", "metadata": {"v": 2}}, 201
    )
    doc = await get(gateway, "/collections/batch/documents/d0?include_vector=true")
    assert doc["text"] == "completely new words" and doc["metadata"] == {"v": 2} and doc["vector_generated"] is True
    assert len(doc["vector"]) == 384
    assert (await get(gateway, "/collections/batch"))["document_count"] == 40
    # Generated ids are unique.
    gen = await post(gateway, "/collections/batch/documents", {"documents": [{"text": "x"}, {"text": "y"}]}, 201)
    assert len({d["id"] for d in gen["documents"]}) == 2
    # Delete, then the document is gone from reads and search.
    assert await (await gateway.client.delete("/collections/batch/documents/d5")).json() == {
        "id": "d5",
        "deleted": True,
    }
    await get(gateway, "/collections/batch/documents/d5", 404)
    hits = await post(gateway, "/collections/batch/search", {"query": texts[5], "k": 42})
    assert "d5" not in [h["id"] for h in hits["results"]] and len(hits["results"]) == 41
    assert (await gateway.client.delete("/collections/batch/documents/d5")).status == 404


async def test_listing_pages_through_every_document(gateway: Gateway) -> None:
    await post(gateway, "/collections", {"name": "pages"}, 201)
    body = {"documents": [{"id": f"p{i}", "vector": rand_vector(i)} for i in range(25)]}
    await post(gateway, "/collections/pages/documents", body, 201)
    seen, cursor = [], "0"
    while cursor is not None:
        page = await get(gateway, f"/collections/pages/documents?limit=10&after={cursor}")
        assert page["total"] == 25
        seen += [d["id"] for d in page["documents"]]
        cursor = page["next"]
    assert seen == [f"p{i}" for i in range(25)]


async def test_cosine_vectors_are_normalised_and_zero_is_refused(gateway: Gateway) -> None:
    await post(gateway, "/collections", {"name": "norm", "dimension": 384}, 201)
    v = [0.0] * 384
    v[0], v[1] = 3.0, 4.0
    await post(gateway, "/collections/norm/documents", {"id": "a", "vector": v}, 201)
    stored = await get(gateway, "/collections/norm/documents/a?include_vector=true")
    assert stored["vector"][:2] == pytest.approx([0.6, 0.8])
    hit = await post(gateway, "/collections/norm/search", {"vector": v, "k": 1, "include": ["vector"]})
    assert hit["results"][0]["score"] == pytest.approx(1.0, abs=1e-6) and hit["query_embedded"] is False
    assert "text" not in hit["results"][0] and len(hit["results"][0]["vector"]) == 384
    err = await post(gateway, "/collections/norm/documents", {"id": "z", "vector": [0.0] * 384}, 400)
    assert "non-zero" in err["error"]["message"]


async def test_l2_and_ip_keep_vectors_as_given(gateway: Gateway) -> None:
    await post(gateway, "/collections", {"name": "l2", "metric": "l2", "dimension": 384}, 201)
    near, far = [1.0] * 384, [5.0] * 384
    await post(
        gateway,
        "/collections/l2/documents",
        {"documents": [{"id": "near", "vector": near}, {"id": "far", "vector": far}]},
        201,
    )
    hits = (await post(gateway, "/collections/l2/search", {"vector": [0.0] * 384}))["results"]
    assert [h["id"] for h in hits] == ["near", "far"]  # l2: smaller score (distance) is nearer
    assert hits[0]["score"] == pytest.approx(np.sqrt(384), rel=1e-5)


async def test_filters_return_k_results_when_k_match(gateway: Gateway) -> None:
    await post(gateway, "/collections", {"name": "flt"}, 201)
    docs = [
        {"id": f"f{i}", "vector": rand_vector(i), "metadata": {"shard": i % 10, "tag": "t" + str(i % 2)}}
        for i in range(300)
    ]
    await post(gateway, "/collections/flt/documents", {"documents": docs}, 201)
    query = rand_vector(1000)
    for flt, expected_ids in [
        ({"shard": 3}, {f"f{i}" for i in range(300) if i % 10 == 3}),
        ({"shard": {"$in": [1, 2]}, "tag": "t1"}, {f"f{i}" for i in range(300) if i % 10 == 1}),
        ({"tag": "t0"}, {f"f{i}" for i in range(300) if i % 2 == 0}),
    ]:
        res = await post(gateway, "/collections/flt/search", {"vector": query, "k": 25, "filter": flt})
        ids = [r["id"] for r in res["results"]]
        assert len(ids) == 25 and set(ids) <= expected_ids
        scores = [r["score"] for r in res["results"]]
        assert scores == sorted(scores, reverse=True)


async def test_collections_are_listed_deleted_and_named_uniquely(gateway: Gateway, tmp_path: Path, engine: str) -> None:
    a = await post(gateway, "/collections", {"name": "a", "index": {"connectivity": 8, "expansion_search": 50}}, 201)
    assert a["index"]["connectivity"] == 8 and a["index"]["expansion_search"] == 50
    err = await post(gateway, "/collections", {"name": "a"}, 409)
    assert err["error"]["code"] == "collection_exists"
    err = await post(gateway, "/collections", {"name": "b", "dimension": 512}, 400)
    assert err["error"]["code"] == "dimension_mismatch" and "384" in err["error"]["message"]
    assert [c["name"] for c in (await get(gateway, "/collections"))["collections"]] == ["a"]
    # The embedded engine's folder per collection (the PostgreSQL engine's table is tests/integration/
    # test_postgres_engine.py's to check): made with the collection, gone with it.
    folder = tmp_path / "collections" / a["id"]
    assert (folder / "documents.sqlite3").exists() == (engine == "embedded")
    resp = await gateway.client.delete("/collections/a")
    assert resp.status == 200 and (await resp.json())["id"] == a["id"]
    assert not folder.exists()
    await get(gateway, f"/collections/{a['id']}", 404)
    await post(gateway, "/collections/a/search", {"query": "x"}, 404)
    assert (await get(gateway, "/collections"))["collections"] == []


BAD_REQUESTS: list[tuple[str, str, Any, int, str]] = [
    ("post", "/collections/nope/documents", {"text": "x"}, 404, "collection_not_found"),
    ("post", "/collections/nope/search", {"query": "x"}, 404, "collection_not_found"),
    ("get", "/collections/nope", None, 404, "collection_not_found"),
    ("delete", "/collections/nope", None, 404, "collection_not_found"),
    ("get", "/collections/bad/documents/missing", None, 404, "document_not_found"),
    ("delete", "/collections/bad/documents/missing", None, 404, "document_not_found"),
    ("post", "/collections/bad/documents", {"metadata": {"a": 1}}, 400, "invalid_input"),
    ("post", "/collections/bad/documents", {"documents": [{"text": "ok"}, {}]}, 400, "invalid_input"),
    ("post", "/collections/bad/documents", {"documents": []}, 400, "invalid_input"),
    ("post", "/collections/bad/documents", {"documents": [{"text": "x"}] * 1001}, 400, "invalid_input"),
    ("post", "/collections/bad/documents", {"documents": [{"id": "same", "text": "x"}] * 2}, 400, "invalid_input"),
    ("post", "/collections/bad/documents", {"text": 5}, 400, "invalid_input"),
    ("post", "/collections/bad/documents", {"text": ""}, 400, "invalid_input"),
    ("post", "/collections/bad/documents", {"id": 7, "text": "x"}, 400, "invalid_input"),
    ("post", "/collections/bad/documents", {"text": "x", "metadata": [1]}, 400, "invalid_input"),
    ("post", "/collections/bad/documents", {"text": "x", "extra": 1}, 400, "invalid_input"),
    ("post", "/collections/bad/documents", {"vector": [1.0, 2.0]}, 400, "dimension_mismatch"),
    ("post", "/collections/bad/documents", {"vector": "1,2"}, 400, "invalid_input"),
    (
        "post",
        "/collections/bad/documents",
        {"documents": [{"id": "ok", "text": "fine"}, {"vector": [0.5] * 383}]},
        400,
        "dimension_mismatch",
    ),
    ("post", "/collections/bad/documents", [{"text": "x"}], 400, "invalid_input"),
    ("post", "/collections/bad/search", {}, 400, "invalid_input"),
    ("post", "/collections/bad/search", {"query": "x", "vector": [0.1] * 384}, 400, "invalid_input"),
    ("post", "/collections/bad/search", {"query": "x", "k": 0}, 400, "invalid_input"),
    ("post", "/collections/bad/search", {"query": "x", "k": 1001}, 400, "invalid_input"),
    ("post", "/collections/bad/search", {"query": "x", "k": "10"}, 400, "invalid_input"),
    ("post", "/collections/bad/search", {"query": "x", "k": 2.5}, 400, "invalid_input"),
    ("post", "/collections/bad/search", {"query": "x", "filter": {"a": {"$regex": "x"}}}, 400, "invalid_filter"),
    ("post", "/collections/bad/search", {"query": "x", "filter": "a=1"}, 400, "invalid_filter"),
    ("post", "/collections/bad/search", {"query": "x", "include": ["everything"]}, 400, "invalid_input"),
    ("post", "/collections/bad/search", {"query": 3}, 400, "invalid_input"),
    ("post", "/collections/bad/search", {"vector": [1.0] * 10}, 400, "dimension_mismatch"),
    ("post", "/collections", {"name": 5}, 400, "invalid_input"),
    ("post", "/collections", {"name": "bad name!"}, 400, "invalid_input"),
    ("post", "/collections", {"name": "bad"}, 409, "collection_exists"),
    ("post", "/collections", {"name": "x", "metric": "hamming"}, 400, "invalid_input"),
    ("post", "/collections", {"name": "x", "dimension": "384"}, 400, "invalid_input"),
    ("post", "/collections", {"name": "x", "index": {"connectivity": 1000}}, 400, "invalid_input"),
    ("post", "/collections", {"name": "x", "model": "no-such-model", "dimension": 3}, 404, "model_not_found"),
    ("get", "/collections/bad/documents?limit=0", None, 400, "invalid_input"),
    ("get", "/collections/bad/documents/a?include_vector=maybe", None, 400, "invalid_input"),
]


async def state(gw: Gateway) -> Any:
    docs = await get(gw, "/collections/bad/documents?limit=1000&include_vector=true")
    return (await get(gw, "/collections"))["collections"], docs


async def test_bad_input_is_4xx_and_changes_nothing(gateway: Gateway) -> None:
    await post(gateway, "/collections", {"name": "bad"}, 201)
    await post(
        gateway,
        "/collections/bad/documents",
        {"documents": [{"id": "a", "text": "alpha", "metadata": {"k": 1}}, {"id": "b", "vector": rand_vector(2)}]},
        201,
    )
    before = await state(gateway)
    for method, path, body, status, code in BAD_REQUESTS:
        kwargs = as_json(body) if body is not None else {}
        resp = await getattr(gateway.client, method)(path, **kwargs)
        text = await resp.text()
        assert resp.status == status, (method, path, body, text)
        assert (await resp.json())["error"]["code"] == code, (path, body, text)
    resp = await gateway.client.post(
        "/collections/bad/documents", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert await state(gateway) == before


async def test_metrics_count_inserts_searches_and_sources(gateway: Gateway) -> None:
    await post(gateway, "/collections", {"name": "m"}, 201)
    body = {"documents": [{"text": "one"}, {"text": "two"}, {"vector": rand_vector(3)}]}
    await post(gateway, "/collections/m/documents", body, 201)
    await post(gateway, "/collections/m/search", {"query": "one"})
    await post(gateway, "/collections/m/search", {"vector": rand_vector(3)})
    assert await gateway.metric("akidb_documents_inserted_total", source="embedded") == 2
    assert await gateway.metric("akidb_documents_inserted_total", source="vector") == 1
    assert await gateway.metric("akidb_collection_documents", collection="m") == 3
    assert await gateway.metric("akidb_insert_latency_seconds_count") == 1
    assert await gateway.metric("akidb_search_latency_seconds_count", query="text") == 1
    assert await gateway.metric("akidb_search_latency_seconds_count", query="vector") == 1
    text = await (await gateway.client.get("/metrics")).text()
    assert 'akidb_collection_documents{collection="m"} 3.0' in text


async def test_concurrent_inserts_and_searches_stay_correct(gateway: Gateway) -> None:
    await post(gateway, "/collections", {"name": "conc", "dimension": 384}, 201)

    async def writer(w: int) -> None:
        for b in range(5):
            docs = [{"id": f"w{w}-{b}-{i}", "vector": rand_vector(w * 1000 + b * 100 + i)} for i in range(40)]
            await post(gateway, "/collections/conc/documents", {"documents": docs}, 201)

    async def searcher(s: int) -> None:
        for i in range(15):
            res = await post(gateway, "/collections/conc/search", {"vector": rand_vector(10**6 + s * 100 + i), "k": 5})
            scores = [r["score"] for r in res["results"]]
            assert scores == sorted(scores, reverse=True)

    await asyncio.gather(*(writer(w) for w in range(6)), *(searcher(s) for s in range(4)))
    assert (await get(gateway, "/collections/conc"))["document_count"] == 6 * 5 * 40
    for w, b, i in [(0, 0, 0), (5, 4, 39), (3, 2, 17)]:
        v = rand_vector(w * 1000 + b * 100 + i)
        res = await post(gateway, "/collections/conc/search", {"vector": v, "k": 1})
        assert res["results"][0]["id"] == f"w{w}-{b}-{i}"


async def test_a_second_owner_of_the_data_dir_is_refused(gateway: Gateway, tmp_path: Path, engine: str) -> None:
    only_on("embedded", engine, "the data directory's lock (the PostgreSQL engine keeps no collection on local disk)")
    other = DataDir(tmp_path)
    with pytest.raises(StorageError, match=f"in use by another gateway \\(pid {os.getpid()}\\)"):
        other.acquire()
    await post(gateway, "/collections", {"name": "still-works"}, 201)


ODD_VALUES: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], [None], [[]], {}, {"$in": 1}, 2**64, "\u0000"]


async def test_odd_values_in_any_field_are_never_a_server_error(gateway: Gateway) -> None:
    await post(gateway, "/collections", {"name": "odd"}, 201)
    before = await get(gateway, "/collections/odd/documents?include_vector=true")
    cases = [(f"/collections/odd/{p}", f) for p, fields in
             (("documents", ("id", "text", "vector", "metadata", "documents")),
              ("search", ("query", "vector", "k", "filter", "include")))
             for f in fields]  # fmt: skip
    cases += [("/collections", f) for f in ("name", "dimension", "metric", "model", "pooling", "normalize", "index")]
    for path, field in cases:
        for value in ODD_VALUES:
            resp = await gateway.client.post(path, **as_json({field: value}))
            assert resp.status < 500, (path, field, value, await resp.text())
            resp.release()
    for body in ODD_VALUES:
        for path in ("/collections", "/collections/odd/documents", "/collections/odd/search"):
            resp = await gateway.client.post(path, **as_json(body))
            assert 400 <= resp.status < 500, (path, body, await resp.text())
            resp.release()
    after = await get(gateway, "/collections/odd/documents?include_vector=true")
    # The only valid bodies above are text-only documents; nothing else may have been stored.
    assert {d["text"] for d in after["documents"]} - {d["text"] for d in before["documents"]} <= {"x", "\u0000"}
