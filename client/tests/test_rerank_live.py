"""`rerank` and reranked searches against a real gateway with a real reranker worker.

The reranker is the repo's tiny random-weight BERT cross-encoder (tests/fixtures/tiny-bert-reranker;
nothing can be downloaded here), so these tests hold the client to the server's own ordering, not
to a judgement of relevance: a reranked search's top k must be the top k that `rerank` gives
for the same texts. They run once the gateway publishes `/v1/rerank` (issue 22's server side).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from akidb_client import AkiDB, AkiDBError, AsyncAkiDB

from tests.server import REPO, Server, shared
from tests.test_cli_rerank import akidb

RERANKER = REPO / "tests" / "fixtures" / "tiny-bert-reranker"
DOCS = {
    "ml": "Machine learning is a subset of artificial intelligence",
    "paris": "Paris is the capital of France",
    "bread": "Sourdough bread needs a starter and a long rise",
    "nn": "Neural networks learn representations from data",
    "rome": "Rome is the capital of Italy",
}
QUERY = "What is machine learning?"


def published(server: Server) -> tuple[bool, bool]:
    """Whether the gateway's OpenAPI has POST /v1/rerank, and a `rerank` field in a search."""
    spec = httpx.get(server.url + "/openapi.json", timeout=30).json()
    search = spec.get("components", {}).get("schemas", {}).get("SearchItem", {}).get("properties", {})
    return "/v1/rerank" in spec.get("paths", {}), "rerank" in search


@pytest.fixture(scope="module")
def reranker(server: Server) -> Iterator[str]:
    """The name of the reranker a second worker serves on the session's gateway."""
    if not published(server)[0]:
        pytest.skip("this gateway has no POST /v1/rerank yet (issue 22's server side)")
    # The fixture served under the registry's name of the default reranker, so `rerank: true` finds it too.
    args = ("--model", "ms-marco-MiniLM-L-6-v2", "--model-path", str(RERANKER))
    proc = server.add_worker(*args, log_name="reranker")
    try:
        end = time.monotonic() + 180
        while True:
            with AkiDB(server.url) as db:
                served = [m.name for m in db.models() if m.kind == "rerank" and m.workers > 0]
            if served:
                break
            assert proc.poll() is None, f"the reranker worker exited:\n{server.output()}"
            assert time.monotonic() < end, f"no reranker after 180 s:\n{server.output()}"
            time.sleep(0.2)
        yield served[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.procs.remove(proc)


@pytest.fixture(scope="module")
def notes(server: Server, reranker: str) -> Iterator[str]:
    """A collection of DOCS, for searches that rerank."""
    if not published(server)[1]:
        pytest.skip("this gateway's search has no rerank option yet (issue 22's server side)")
    name = f"rr-{uuid.uuid4().hex[:12]}"
    with AkiDB(server.url) as db:
        db.collections.create(name)
        db.collection(name).add([{"id": k, "text": v} for k, v in DOCS.items()])
    yield name
    with AkiDB(server.url) as db:
        db.collections.delete(name)


def test_rerank_orders_every_document_once(db: AkiDB, reranker: str) -> None:
    docs = list(DOCS.values())
    out = db.rerank(QUERY, docs, model=reranker, return_documents=True)
    assert sorted(r.index for r in out) == list(range(len(docs)))
    scores = [r.relevance_score for r in out]
    assert scores == sorted(scores, reverse=True)
    assert all(r.document == docs[r.index] for r in out)
    assert out.model == reranker and out.total_tokens > 0
    top = db.rerank(QUERY, docs, top_n=2, model=reranker)
    assert [(r.index, r.relevance_score) for r in top] == [(r.index, r.relevance_score) for r in out[:2]]
    assert all(r.document is None for r in top)


async def test_async_rerank_agrees_with_sync(db: AkiDB, reranker: str) -> None:
    docs = list(DOCS.values())
    async with AsyncAkiDB(shared().url) as adb:
        got = await adb.rerank(QUERY, docs, model=reranker)
    assert [r.index for r in got] == [r.index for r in db.rerank(QUERY, docs, model=reranker)]


def test_reranked_search_is_reranks_top_k_with_both_scores(db: AkiDB, reranker: str, notes: str) -> None:
    ids, texts = list(DOCS), list(DOCS.values())
    expected = [ids[r.index] for r in db.rerank(QUERY, texts, top_n=3, model=reranker)]
    option = {"model": reranker, "candidates": len(DOCS)}
    hits = db.collection(notes).search(QUERY, k=3, rerank=option, include=["text", "ranks"])
    assert [h.id for h in hits] == expected
    assert all(h.retrieval_score is not None and h.ranks for h in hits)
    assert [h.ranks["rerank"] for h in hits if h.ranks] == [1, 2, 3]
    plain = db.collection(notes).search(QUERY, k=len(DOCS), include=[])
    by_id = {h.id: h.score for h in plain}
    assert all(h.retrieval_score == pytest.approx(by_id[h.id], abs=1e-5) for h in hits)


def test_batch_search_reranks_per_query(db: AkiDB, reranker: str, notes: str) -> None:
    option = {"model": reranker, "candidates": len(DOCS)}
    batch = db.collection(notes).search_many(
        [
            {"query": QUERY, "k": 2, "rerank": option},
            {"query": "the capital of Italy", "k": 2},
        ]
    )
    ids, texts = list(DOCS), list(DOCS.values())
    assert [h.id for h in batch[0]] == [ids[r.index] for r in db.rerank(QUERY, texts, top_n=2, model=reranker)]
    assert [h.id for h in batch[1]] == [h.id for h in db.collection(notes).search("the capital of Italy", k=2)]


def assert_4xx(*calls: Callable[[], object]) -> None:
    for call in calls:
        with pytest.raises(AkiDBError) as err:
            call()
        assert err.value.status is not None and 400 <= err.value.status < 500, err.value


def test_bad_rerank_input_is_a_typed_4xx(db: AkiDB, reranker: str) -> None:
    assert_4xx(
        lambda: db.rerank(QUERY, [], model=reranker),
        lambda: db.rerank(QUERY, ["a"], model="no-such-reranker"),
        lambda: db.rerank(QUERY, ["a"], top_n=0, model=reranker),
    )


def test_bad_search_rerank_input_is_a_typed_4xx(db: AkiDB, reranker: str, notes: str) -> None:
    col = db.collection(notes)
    assert_4xx(
        lambda: col.search(QUERY, rerank={"model": reranker, "candidates": 0}),
        lambda: col.search(QUERY, rerank={"model": "no-such-reranker"}),
        lambda: col.search(vector=[0.1] * 384, rerank={"model": reranker}),
    )


def test_cli_rerank(server: Server, reranker: str) -> None:
    texts = list(DOCS.values())
    out = akidb(server.url, "rerank", QUERY, "--model", reranker, "--json", stdin="\n".join(texts))
    assert out.returncode == 0, out.stderr
    with AkiDB(server.url) as db:
        expected = [r.index for r in db.rerank(QUERY, texts, model=reranker)]
    assert [r["index"] for r in json.loads(out.stdout)["results"]] == expected


def test_cli_search_rerank(server: Server, reranker: str, notes: str) -> None:
    found = akidb(server.url, "search", QUERY, "-c", notes, "-k", "2", "--rerank", reranker, "--json")
    assert found.returncode == 0, found.stderr
    assert all("retrieval_score" in r for r in json.loads(found.stdout)["results"])


def test_langchain_rerank_after_the_vector_store(server: Server, reranker: str) -> None:
    from akidb_client.langchain import AkiDBRerank, AkiDBVectorStore
    from langchain_classic.retrievers import ContextualCompressionRetriever

    store = AkiDBVectorStore.from_texts(list(DOCS.values()), url=server.url)
    try:
        retriever = ContextualCompressionRetriever(
            base_compressor=AkiDBRerank(top_n=2, model=reranker, url=server.url),
            base_retriever=store.as_retriever(search_kwargs={"k": len(DOCS)}),
        )
        found = retriever.invoke(QUERY)
    finally:
        store.delete_collection()
    with AkiDB(server.url) as db:
        best = db.rerank(QUERY, list(DOCS.values()), top_n=2, model=reranker, return_documents=True)
    assert [d.page_content for d in found] == [r.document for r in best]
    assert [d.metadata["relevance_score"] for d in found] == pytest.approx([r.relevance_score for r in best])
