"""Keyword and hybrid search over HTTP: the real app, a real MiniLM worker, SQLite FTS5 on disk."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_collections_api import post, rand_vector
from tests.support.backends import ONE_BACKEND
from tests.support.engines import BOTH_ENGINES, only_on
from tests.support.gateway import Gateway

pytestmark = [ONE_BACKEND, BOTH_ENGINES]

DOCS = [
    ("py", "Python is a programming language with dynamic typing", {"lang": "en", "year": 1991}),
    ("rs", "Rust is a systems programming language focused on memory safety", {"lang": "en", "year": 2015}),
    ("fr", "Le langage Python est très utilisé pour la science des données", {"lang": "fr", "year": 2020}),
    ("cook", "A recipe for sourdough bread with a crisp crust", {"lang": "en", "year": 2021}),
    ("db", "SQLite is an embedded SQL database engine; FTS5 adds full-text search", {"lang": "en", "year": 2000}),
    ("emoji", "Launch day 🚀 for the well-known rocket AND its crew", {"lang": "en", "year": 2024}),
]
ASTRO = "astronaut crew spaceflight, crust"  # dense: the rocket; BM25: the rare word "crust"
HOSTILE = [
    'say "hello',
    "well-known -- AND OR NOT",
    "AND",
    "*",
    "col:umn NEAR(a b) (paren ^start",
    "🚀🚀 👩‍💻",
    "'; DROP TABLE documents; --",
    "\\",
]


async def seeded(gw: Gateway, name: str = "hy") -> str:
    await post(gw, "/collections", {"name": name}, 201)
    docs = [{"id": i, "text": t, "metadata": m} for i, t, m in DOCS]
    await post(gw, f"/collections/{name}/documents", {"documents": docs}, 201)
    return f"/collections/{name}/search"


def ids(found: dict[str, Any]) -> list[str]:
    return [r["id"] for r in found["results"]]


async def test_each_mode_answers_with_its_own_score(gateway: Gateway) -> None:
    path = await seeded(gateway)
    dense = await post(gateway, path, {"query": "a language for programming", "k": 3})
    assert dense["query_embedded"] is True and set(ids(dense)) <= {"py", "rs", "fr", "db"}
    keyword = await post(gateway, path, {"query": "sourdough", "mode": "keyword"})
    assert keyword["query_embedded"] is False  # BM25 needs no embedding
    assert ids(keyword) == ["cook"] and keyword["results"][0]["score"] > 0
    assert keyword["results"][0]["text"].startswith("A recipe")
    hybrid = await post(gateway, path, {"query": "programming language memory safety", "mode": "hybrid", "k": 3})
    assert hybrid["query_embedded"] is True and ids(hybrid)[0] == "rs"
    assert 0 < hybrid["results"][0]["score"] <= 1 / 61  # RRF: at most alpha/(k+1) + (1-alpha)/(k+1)


async def test_ranks_say_where_each_result_came_from(gateway: Gateway) -> None:
    path = await seeded(gateway)
    found = await post(gateway, path, {"query": "embedded database", "mode": "hybrid", "k": 6, "include": ["ranks"]})
    first = found["results"][0]
    assert first["id"] == "db" and first["ranks"] == {"dense": 1, "keyword": 1}
    assert "text" not in first and "metadata" not in first
    assert all(set(r["ranks"]) <= {"dense", "keyword"} and r["ranks"] for r in found["results"])
    dense = await post(gateway, path, {"query": "bread", "k": 2, "include": ["ranks", "text"]})
    assert [r["ranks"] for r in dense["results"]] == [{"dense": 1}, {"dense": 2}]
    keyword = await post(gateway, path, {"query": "python", "mode": "keyword", "include": ["ranks"]})
    assert [r["ranks"] for r in keyword["results"]] == [{"keyword": 1}, {"keyword": 2}]
    plain = await post(gateway, path, {"query": "python", "mode": "keyword"})
    assert "ranks" not in plain["results"][0]


async def test_filters_apply_in_keyword_and_hybrid_mode(gateway: Gateway) -> None:
    path = await seeded(gateway)
    fr = await post(gateway, path, {"query": "python", "mode": "keyword", "filter": {"lang": "fr"}})
    assert ids(fr) == ["fr"]
    recent = await post(
        gateway, path, {"query": "programming language", "mode": "hybrid", "k": 10, "filter": {"year": {"$gte": 2015}}}
    )
    assert set(ids(recent)) == {"rs", "fr", "cook", "emoji"}  # k results whenever k match: all four that pass


async def test_alpha_leans_towards_one_ranking(gateway: Gateway) -> None:
    path = await seeded(gateway)
    query = ASTRO
    dense_top = ids(await post(gateway, path, {"query": query, "k": 1}))
    keyword_top = ids(await post(gateway, path, {"query": query, "mode": "keyword", "k": 1}))
    assert dense_top == ["emoji"] and keyword_top == ["cook"]
    body = {"query": query, "mode": "hybrid", "k": 1, "include": ["ranks"]}
    assert ids(await post(gateway, path, {**body, "alpha": 0.0})) == keyword_top
    assert ids(await post(gateway, path, {**body, "alpha": 1.0})) == dense_top


@pytest.mark.parametrize("query", HOSTILE)
async def test_plain_text_of_any_kind_is_searched_as_words(gateway: Gateway, query: str) -> None:
    path = await seeded(gateway)
    for mode in ("keyword", "hybrid"):
        await post(gateway, path, {"query": query, "mode": mode})  # 200, never 400 or 500
    found = await post(gateway, path, {"query": "well-known AND 🚀", "mode": "keyword"})
    assert ids(found)[0] == "emoji"


async def test_fts5_syntax_when_asked_and_its_errors_are_400(gateway: Gateway, engine: str) -> None:
    only_on("embedded", engine, "keyword_syntax fts5 is SQLite FTS5's query language (postgres: a 400)")
    path = await seeded(gateway)
    found = await post(gateway, path, {"query": "python NOT programming", "mode": "keyword", "keyword_syntax": "fts5"})
    assert ids(found) == ["fr"]
    prefix = await post(gateway, path, {"query": "sourd*", "mode": "hybrid", "keyword_syntax": "fts5", "k": 1})
    assert ids(prefix) == ["cook"]
    for bad in ("AND", 'python "unclosed', "nosuchcolumn:python", "(python"):
        for mode in ("keyword", "hybrid"):
            err = await post(gateway, path, {"query": bad, "mode": mode, "keyword_syntax": "fts5"}, 400)
            assert err["error"]["code"] == "invalid_input"
            assert "not valid FTS5 syntax" in err["error"]["message"], err


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"vector": "V", "mode": "keyword"}, "mode keyword searches the documents' text: give query"),
        ({"vector": "V", "mode": "hybrid"}, "mode hybrid searches the documents' text: give query"),
        ({"query": "x", "alpha": 0.3}, "alpha weighs the two rankings of a hybrid search"),
        ({"query": "x", "mode": "keyword", "alpha": 0.3}, "alpha weighs the two rankings"),
        ({"query": "x", "keyword_syntax": "fts5"}, "keyword_syntax applies to modes keyword and hybrid"),
        ({"query": "x", "mode": "hybrid", "alpha": 1.5}, "alpha must be"),
        ({"query": "x", "mode": "sparse"}, "mode must be one of dense, keyword, hybrid"),
        ({"queries": [{"query": "x"}, {"vector": "V", "mode": "keyword"}]}, "queries[1]: mode keyword searches"),
        ({"queries": [{"query": "x"}], "mode": "keyword"}, "found mode beside queries"),
    ],
)
async def test_refused_text_searches(gateway: Gateway, body: dict[str, Any], message: str) -> None:
    path = await seeded(gateway)
    vector = rand_vector(3)
    body = {k: (vector if v == "V" else v) for k, v in body.items()}
    if "queries" in body:
        body["queries"] = [{k: (vector if v == "V" else v) for k, v in q.items()} for q in body["queries"]]
    err = await post(gateway, path, body, 400)
    assert message in err["error"]["message"], err


async def test_batch_members_take_their_own_mode(gateway: Gateway) -> None:
    path = await seeded(gateway)
    jobs_before = await gateway.metric(
        "akidb_embedding_requests_total", model="all-MiniLM-L6-v2", status="ok", transport="collections"
    )
    found = await post(
        gateway,
        path,
        {
            "queries": [
                {"query": "sourdough", "mode": "keyword", "k": 1},
                {"query": "rocket launch", "mode": "hybrid", "alpha": 0.7, "k": 1, "include": ["ranks"]},
                {"query": "bread", "k": 1},
                {"vector": rand_vector(4), "k": 2},
            ]
        },
    )
    assert [r[0]["id"] for r in found["results"][:3]] == ["cook", "emoji", "cook"]
    assert found["results"][1][0]["ranks"]["keyword"] == 1 and len(found["results"][3]) == 2
    jobs_after = await gateway.metric(
        "akidb_embedding_requests_total", model="all-MiniLM-L6-v2", status="ok", transport="collections"
    )
    assert jobs_after == jobs_before + 1  # the two texts that need vectors, in one call
    counts = [await gateway.metric("akidb_searches_total", mode=m) for m in ("dense", "keyword", "hybrid")]
    assert counts == [2, 1, 1]


async def test_upserts_and_deletes_keep_keyword_search_in_step(gateway: Gateway) -> None:
    path = await seeded(gateway)
    base = "/collections/hy/documents"
    await post(gateway, base, {"id": "cook", "text": "A guide to growing tomatoes"}, 201)
    assert ids(await post(gateway, path, {"query": "sourdough", "mode": "keyword"})) == []
    assert ids(await post(gateway, path, {"query": "tomatoes", "mode": "keyword"})) == ["cook"]
    await post(gateway, base, {"id": "vec", "vector": rand_vector(5)}, 201)  # no text: nothing to index
    resp = await gateway.client.delete(f"{base}/cook")
    assert resp.status == 200
    assert ids(await post(gateway, path, {"query": "tomatoes", "mode": "keyword"})) == []
    assert "cook" not in ids(await post(gateway, path, {"query": "tomatoes", "mode": "hybrid", "k": 10}))
