"""Moving a collection between storage engines by snapshot: embedded → postgres → embedded gives the same
documents and the same answers (docs/scale-out.md, "Moving between engines").

Two levels: the engines behind the seam (dense, keyword, hybrid and filtered searches compared call for call;
no worker, so hybrid takes its vector as given), and the HTTP path an operator follows (download from one
gateway, upload to another). Real SQLite and USearch on disk, a real PostgreSQL; nothing mocked.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.storage.backup import MANIFEST, Backups, unpack
from gateway.storage.engine import Catalogue, CollectionInfo, CollectionStore, Hit, NewDocument, TextQuery
from gateway.storage.errors import UnstorableValue
from gateway.storage.filters import parse_filter
from gateway.storage.index import IndexParams
from tests.support.engines import open_engine
from tests.support.gateway import Gateway, make_config, running_gateway
from tests.support.postgres import fresh_database
from tests.support.processes import free_port

DIM = 16
ALL = frozenset(("text", "metadata", "vector"))
WORDS = ["cat", "dog", "mat", "bird", "hand", "fish", "tree", "river", "stone", "cloud"]
MAX_RESTORE = 1 << 30
# Scores on two engines agree to float32 noise: the index holds f32 on both (bf16 would round them apart).
TOLERANCE = 1e-5


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def text_of(i: int) -> str:
    rng = np.random.default_rng(10_000 + i)
    return " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), 3 + i % 5))


def new_doc(i: int, seed: int | None = None) -> NewDocument:
    """Document i: a text from a small vocabulary (keyword search finds many), metadata to filter on; every
    13th has no text, every 11th no metadata, every 7th counts as generated."""
    text = None if i % 13 == 0 else text_of(i)
    metadata = None if i % 11 == 0 else json.dumps({"i": i, "group": i % 3, "tag": WORDS[i % 4]})
    return NewDocument(f"d{i}", text, metadata, unit(i if seed is None else seed), i % 7 == 0)


def describe(name: str) -> CollectionInfo:
    return CollectionInfo(
        id=f"col_{name}",
        name=name,
        dimension=DIM,
        metric="cosine",
        model="all-MiniLM-L6-v2",
        pooling="mean",
        normalize=True,
        index=IndexParams(16, 128, 128, "f32"),
        created_at=time.time(),
    )


def postgres(request: pytest.FixtureRequest) -> tuple[str, ...]:
    dsn = fresh_database(request.getfixturevalue("postgres_server"))
    return ("storage.backend=postgres", f"storage.postgres.dsn={dsn}")


async def move(source: CollectionStore, source_root: Path, target: Catalogue) -> tuple[CollectionStore, dict[str, Any]]:
    """Snapshot `source`, restore the file into `target` under the same name; the store and the manifest."""
    backups = Backups(source_root)
    made = await source.export_snapshot(backups)
    path = backups.path(source.info.name, made.name)
    with tarfile.open(path) as tar:
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
    store = await target.restore(source.info.name, lambda staging: unpack(path, staging, MAX_RESTORE).info_json)
    return store, manifest


async def documents(col: CollectionStore) -> list[tuple[Any, ...]]:
    """Every document in insertion order, metadata parsed (jsonb spells JSON its own way), vector bytes exact."""
    out: list[tuple[Any, ...]] = []
    after = 0
    while True:
        page, _ = await col.page(after, 100, with_vector=True)
        if not page:
            return out
        out += [
            (d.doc_id, d.text, None if d.metadata is None else json.loads(d.metadata), d.vector, d.generated)
            for d in page
        ]
        after = page[-1].key


Answer = list[tuple[str, float]]


async def answers(col: CollectionStore) -> dict[str, Answer]:
    """Dense, keyword and hybrid searches, each unfiltered and filtered: (doc_id, score) best first."""
    group = parse_filter({"group": 1})
    tagged = parse_filter({"$and": [{"tag": {"$in": ["cat", "dog"]}}, {"i": {"$gte": 40}}]})
    out: dict[str, Answer] = {}
    for q in range(4):
        vector, words = unit(5000 + q), TextQuery(f"{WORDS[q]} {WORDS[q + 3]}")
        searches: dict[str, Awaitable[list[Hit]]] = {  # all awaited below, in order
            "dense": col.search(vector, 10, None, ALL),
            "dense group": col.search(vector, 10, group, ALL),
            "dense tagged": col.search(vector, 5, tagged, ALL),
            "keyword": col.keyword_search(words, 10, None, ALL),
            "keyword group": col.keyword_search(words, 10, group, ALL),
            "hybrid": col.hybrid_search(vector, words, 10, None, 0.5, ALL),
            "hybrid tagged": col.hybrid_search(vector, words, 5, tagged, 0.3, ALL),
        }
        for name, search in searches.items():
            out[f"{name} {q}"] = [(h.doc.doc_id, h.score) for h in await search]
    return out


def assert_same(got: dict[str, Answer], want: dict[str, Answer], kinds: tuple[str, ...]) -> None:
    for name, expected in want.items():
        if not name.startswith(kinds):
            continue
        assert expected, f"{name}: no results, so nothing was compared"
        assert [d for d, _ in got[name]] == [d for d, _ in expected], name
        assert np.allclose([s for _, s in got[name]], [s for _, s in expected], atol=TOLERANCE, rtol=0), name


async def test_embedded_to_postgres_to_embedded_keeps_documents_and_answers(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with open_engine(tmp_path / "a") as first:
        original = await first.create(describe("c"))
        await original.upsert([new_doc(i) for i in range(300)])
        await original.upsert([new_doc(i, seed=900 + i) for i in range(0, 30, 3)])  # replaced: new keys, at the end
        for i in (5, 50, 150):
            assert await original.delete(f"d{i}")
        want_docs, want = await documents(original), await answers(original)

        async with open_engine(tmp_path / "b", *postgres(request)) as middle:
            on_postgres, manifest = await move(original, first.data_root, middle)
            assert manifest["engine"] == "embedded" and manifest["documents"] == 297
            assert on_postgres.engine == "postgres" and on_postgres.info.id != original.info.id
            assert await documents(on_postgres) == want_docs
            # Dense answers (filtered or not) match across engines; keyword scores do not (BM25 against
            # ts_rank_cd: test_engine_congruence.py), so the round trip below holds those to the original.
            assert_same(await answers(on_postgres), want, ("dense",))

            async with open_engine(tmp_path / "c") as last:
                back, manifest = await move(on_postgres, middle.data_root, last)
                assert manifest["engine"] == "postgres" and manifest["documents"] == 297
                assert back.engine == "embedded" and back.info.name == "c"
                assert await documents(back) == want_docs
                assert_same(await answers(back), want, ("dense", "keyword", "hybrid"))
                assert len(list((middle.data_root / "snapshots").glob(".*"))) == 0  # the unpacking is gone


async def test_a_restore_into_postgres_is_all_or_nothing(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A snapshot whose last document PostgreSQL refuses (a NUL in its text, which SQLite holds) creates
    nothing: not the collection, not its first documents, not a name that blocks a retry."""
    async with open_engine(tmp_path / "a") as first:
        col = await first.create(describe("c"))
        await col.upsert([new_doc(i) for i in range(2500)])  # more than one COPY batch
        await col.upsert([NewDocument("bad", "a\x00b", None, unit(1), False)])
        async with open_engine(tmp_path / "b", *postgres(request)) as pg:
            with pytest.raises(UnstorableValue, match=r"storage\.backend postgres"):
                await move(col, first.data_root, pg)
            assert pg.find("c") is None
            await pg.reload()  # what the database holds, not only this gateway's view
            assert pg.find("c") is None
            assert await col.delete("bad")
            moved, _ = await move(col, first.data_root, pg)
            assert await moved.count() == 2500


# -- the operator's path: HTTP download from one gateway, upload to the next ------------------------------------


async def http_documents(gw: Gateway) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = "0"
    while True:
        resp = await gw.client.get(
            "/collections/c/documents", params={"limit": "100", "after": after, "include_vector": "true"}
        )
        page = await resp.json()
        out += page["documents"]
        if page["next"] is None:
            return out
        after = page["next"]


async def http_answers(gw: Gateway) -> dict[str, Answer]:
    bodies = [
        {"vector": unit(7000).tolist(), "k": 8},
        {"vector": unit(7001).tolist(), "k": 8, "filter": {"group": 2}},
        {"query": "cat river", "mode": "keyword", "k": 8},
        {"query": "dog", "mode": "keyword", "k": 8, "filter": {"tag": "mat"}},
    ]
    out = {}
    for body in bodies:
        resp = await gw.client.post("/collections/c/search", json=body)
        assert resp.status == 200, await resp.text()
        name = f"{body.get('mode', 'dense')} {json.dumps(body.get('filter'))} {body.get('query')}"
        out[name] = [(r["id"], r["score"]) for r in (await resp.json())["results"]]
    return out


async def test_the_http_path_moves_a_collection_there_and_back(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    def gateway(name: str, *settings: str) -> Any:
        cfg = make_config(f"tcp://127.0.0.1:{free_port()}", str(tmp_path / name), "storage.index_dtype=f32", *settings)
        return running_gateway(cfg)

    async def download(gw: Gateway) -> bytes:
        resp = await gw.client.post("/collections/c/snapshots")
        assert resp.status == 201, await resp.text()
        resp = await gw.client.get(f"/collections/c/snapshots/{(await resp.json())['name']}")
        assert resp.status == 200
        return await resp.read()

    async def upload(gw: Gateway, data: bytes) -> None:
        resp = await gw.client.post(
            "/collections/restore",
            params={"name": "c"},
            data=io.BytesIO(data),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert resp.status == 201, await resp.text()

    docs = [
        {"id": d.doc_id, "text": d.text, "vector": d.vector.tolist()}
        | ({} if d.metadata is None else {"metadata": json.loads(d.metadata)})
        for d in map(new_doc, range(1, 120))
    ]
    async with gateway("a") as a:
        resp = await a.client.post("/collections", json={"name": "c", "dimension": DIM})
        assert resp.status == 201, await resp.text()
        resp = await a.client.post("/collections/c/documents", json={"documents": docs})
        assert resp.status == 201, await resp.text()
        want_docs, want = await http_documents(a), await http_answers(a)
        snapshot = await download(a)
    async with gateway("b", *postgres(request)) as b:
        await upload(b, snapshot)
        assert await http_documents(b) == want_docs
        assert_same(await http_answers(b), want, ("dense",))  # plain and filtered
        snapshot = await download(b)
    async with gateway("c") as c:
        await upload(c, snapshot)
        assert await http_documents(c) == want_docs
        assert_same(await http_answers(c), want, ("dense", "keyword"))
