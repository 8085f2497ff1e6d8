"""Search, then rerank, in one call: a real MiniLM worker embeds, a real worker on the committed tiny cross-encoder
reranks; the reranked order equals POST /rerank's order of the same candidates, in every mode and in a batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.backends import ONE_BACKEND
from tests.support.gateway import Gateway
from tests.support.processes import WorkerProcess

pytestmark = ONE_BACKEND

RERANKER = "ms-marco-MiniLM-L-6-v2"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny-bert-reranker"
TOPICS = ["cats sleep", "dogs bark", "stock markets", "rain forests", "quantum computers"]
DOCS = [f"Note {i}: {TOPICS[i % 5]} and {TOPICS[(i * 3) % 5]}, item {i}" for i in range(20)]
QUERY = "why do cats sleep so much"


@pytest.fixture(scope="module")
def reranker(zmq_endpoint: str, backend: str) -> Iterator[WorkerProcess]:
    """A reranker beside the session's MiniLM worker, dialing the same gateways."""
    worker = WorkerProcess(zmq_endpoint, "--backend", backend, "--model", RERANKER, "--model-path", str(FIXTURE))
    yield worker
    worker.stop()


@pytest.fixture
async def gw(gateway: Gateway, reranker: WorkerProcess) -> Gateway:
    try:
        await gateway.wait_for_workers(1, model=RERANKER)
    except TimeoutError:
        pytest.fail(f"reranker did not connect; its log:\n{reranker.output()[-3000:]}")
    await post(gateway, "/collections", {"name": "c"}, 201)
    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(DOCS)]
    await post(gateway, "/collections/c/documents", {"documents": docs}, 201)
    return gateway


async def post(gw: Gateway, path: str, body: Any, status: int = 200) -> Any:
    resp = await gw.client.post(path, json=body)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def expected(gw: Gateway, search: dict[str, Any], candidates: int, k: int) -> list[tuple[str, float]]:
    """The plain search's `candidates` hits, reranked by POST /rerank: (id, score) of the best k."""
    plain = await post(gw, "/collections/c/search", {**search, "k": candidates, "include": ["text"]})
    hits = plain["results"]
    ranked = await post(gw, "/rerank", {"query": search["query"], "texts": [h["text"] for h in hits]})
    return [(hits[r["index"]]["id"], r["score"]) for r in ranked[:k]]


def same(got: list[dict[str, Any]], want: list[tuple[str, float]]) -> None:
    assert [h["id"] for h in got] == [i for i, _ in want]
    np.testing.assert_allclose([h["score"] for h in got], [s for _, s in want], atol=1e-5)


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
async def test_the_reranked_order_is_reranks_order_of_the_candidates(gw: Gateway, mode: str) -> None:
    search = {"query": QUERY, "mode": mode}
    want = await expected(gw, search, candidates=12, k=4)
    body = {**search, "k": 4, "rerank": {"model": RERANKER, "candidates": 12}, "include": ["ranks"]}
    out = await post(gw, "/collections/c/search", body)
    same(out["results"], want)
    plain = await post(gw, "/collections/c/search", {**search, "k": 12, "include": ["ranks"]})
    retrieval = {h["id"]: (h["score"], h["ranks"]) for h in plain["results"]}
    for rank, hit in enumerate(out["results"], start=1):
        score, ranks = retrieval[hit["id"]]
        assert hit["retrieval_score"] == pytest.approx(score)
        assert hit["ranks"] == {**ranks, "rerank": rank}
        assert "text" not in hit  # include named ranks only: the texts the reranker read stay out


async def test_rerank_true_uses_the_default_reranker_and_fifty_candidates(gw: Gateway) -> None:
    want = await expected(gw, {"query": QUERY}, candidates=50, k=3)  # 20 documents: every one is a candidate
    out = await post(gw, "/collections/c/search", {"query": QUERY, "k": 3, "rerank": True})
    same(out["results"], want)
    assert "retrieval_score" not in out["results"][0]  # only with include ranks


async def test_batch_search_reranks_per_query(gw: Gateway) -> None:
    queries = [
        {"query": QUERY, "k": 2, "rerank": {"candidates": 10}},
        {"query": "markets and rain", "k": 3},  # no rerank: the plain search
        {"query": "dogs", "mode": "keyword", "k": 3, "rerank": {"candidates": 6}},
    ]
    out = await post(gw, "/collections/c/search", {"queries": queries})
    first, second, third = out["results"]
    same(first, await expected(gw, {"query": QUERY}, 10, 2))
    plain = await post(gw, "/collections/c/search", {"query": "markets and rain", "k": 3})
    assert [h["id"] for h in second] == [h["id"] for h in plain["results"]]
    same(third, await expected(gw, {"query": "dogs", "mode": "keyword"}, 6, 3))


async def test_a_bad_rerank_option_is_a_400_naming_it(gw: Gateway) -> None:
    cases = [
        ({"vector": [0.0] * 384, "rerank": True}, "rerank"),
        ({"query": QUERY, "rerank": {"model": "all-MiniLM-L6-v2"}}, "is an embedding model"),
        ({"query": QUERY, "rerank": {"candidates": 0}}, "rerank.candidates"),
        ({"query": QUERY, "rerank": {"top": 3}}, "rerank"),
        ({"queries": [{"query": QUERY}], "rerank": True}, "rerank beside queries"),
        ({"queries": [{"query": QUERY}, {"vector": [0.0] * 384, "rerank": True}]}, "queries[1]"),
    ]
    for body, named in cases:
        resp = await gw.client.post("/collections/c/search", json=body)
        message = (await resp.json())["error"]["message"]
        assert resp.status == 400 and named in message, (body, message)
