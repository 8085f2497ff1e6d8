"""`rerank` and the search's `rerank` option, sync and async, against the fake server of tests/fake.py."""

from __future__ import annotations

import pytest
from akidb_client import AkiDB, AsyncAkiDB, BadRequest, NotFound, Ranked, Reranking

from tests.fake import MODEL, QUERY, TEXTS, FakeAkiDB


def test_rerank_sends_cohere_fields_and_reads_typed_results(fake: FakeAkiDB) -> None:
    with AkiDB(fake.url) as db:
        out = db.rerank(QUERY, TEXTS)
    assert fake.requests == [("/v1/rerank", {"query": QUERY, "documents": TEXTS, "return_documents": False})]
    assert isinstance(out, Reranking) and out.model == MODEL and out.total_tokens > 0
    assert [r.index for r in out] == [2, 1, 0] and len(out) == 3
    assert out[0] == Ranked(2, 1.0, None)
    assert [r.relevance_score for r in out] == sorted((r.relevance_score for r in out), reverse=True)


def test_rerank_top_n_model_and_documents(fake: FakeAkiDB) -> None:
    with AkiDB(fake.url) as db:
        out = db.rerank(QUERY, TEXTS, top_n=2, model=MODEL, return_documents=True)
    assert fake.requests[0][1] == {
        "query": QUERY,
        "documents": TEXTS,
        "top_n": 2,
        "model": MODEL,
        "return_documents": True,
    }
    assert [(r.index, r.document) for r in out] == [(2, TEXTS[2]), (1, TEXTS[1])]


def test_rerank_errors_are_typed_with_the_servers_code(fake: FakeAkiDB) -> None:
    with AkiDB(fake.url) as db:
        with pytest.raises(NotFound) as missing:
            db.rerank(QUERY, TEXTS, model="no-such-reranker")
        assert missing.value.code == "model_not_found" and "no-such-reranker" in str(missing.value)
        with pytest.raises(BadRequest) as bad:
            db.rerank(QUERY, [])
        assert bad.value.code == "invalid_input"
        with pytest.raises(TypeError):
            db.rerank(QUERY, "one string is not a list of documents")  # type: ignore[arg-type]
    assert len(fake.requests) == 2  # the last was refused before sending


async def test_async_rerank(fake: FakeAkiDB) -> None:
    async with AsyncAkiDB(fake.url) as db:
        out = await db.rerank(QUERY, TEXTS, top_n=1, return_documents=True)
    assert [(r.index, r.document) for r in out] == [(2, TEXTS[2])]


@pytest.mark.parametrize(
    ("option", "wire"),
    [
        (True, True),
        (MODEL, {"model": MODEL}),
        ({"model": MODEL, "candidates": 3}, {"model": MODEL, "candidates": 3}),
        ({"candidates": 2}, {"candidates": 2}),
    ],
)
def test_search_rerank_option_on_the_wire(fake: FakeAkiDB, option: object, wire: object) -> None:
    with AkiDB(fake.url) as db:
        db.collection("notes").search(QUERY, k=2, rerank=option)  # type: ignore[arg-type]
    assert fake.requests[0][1]["rerank"] == wire


def test_search_without_rerank_sends_no_rerank_field(fake: FakeAkiDB) -> None:
    with AkiDB(fake.url) as db:
        db.collection("notes").search(QUERY, k=2)
        db.collection("notes").search(QUERY, k=2, rerank=False)
    assert all("rerank" not in body for _, body in fake.requests)


def test_reranked_search_has_both_scores(fake: FakeAkiDB) -> None:
    with AkiDB(fake.url) as db:
        col = db.collection("notes")
        plain = col.search(QUERY, k=4, include=["ranks"])
        reranked = col.search(QUERY, k=2, rerank={"candidates": 4}, include=["text", "ranks"], mode="dense")
    assert [h.id for h in plain] == ["paris", "rome", "ml", "what-ml"]
    assert all(h.retrieval_score is None for h in plain) and plain[2].ranks == {"dense": 3}
    assert [h.id for h in reranked] == ["what-ml", "ml"]
    top = reranked[0]
    assert top.score == 1.0 and top.retrieval_score == pytest.approx(0.7) and top.ranks == {"dense": 4, "rerank": 1}
    assert top.text is not None and fake.requests[1][1]["mode"] == "dense"


def test_unknown_rerank_option_is_refused_before_sending(fake: FakeAkiDB) -> None:
    with AkiDB(fake.url) as db, pytest.raises(ValueError, match="rerank takes model and candidates"):
        db.collection("notes").search(QUERY, rerank={"top_n": 3})
    assert fake.requests == []


def test_rerank_of_a_vector_search_is_the_servers_400(fake: FakeAkiDB) -> None:
    with AkiDB(fake.url) as db, pytest.raises(BadRequest, match="rerank reads the query's text"):
        db.collection("notes").search(vector=[0.1, 0.2], rerank=True)


def test_batch_search_reranks_per_query(fake: FakeAkiDB) -> None:
    with AkiDB(fake.url) as db:
        batch = db.collection("notes").search_many(
            [
                {"query": QUERY, "k": 2, "rerank": True, "include": ["ranks"]},
                {"query": "capital of Italy", "k": 1},
                {"vector": [0.5, 0.5], "k": 1, "include": []},
            ]
        )
    sent = fake.requests[0][1]["queries"]
    assert sent[0]["rerank"] is True and "rerank" not in sent[1] and sent[2]["vector"] == [0.5, 0.5]
    assert len(batch) == 3 and batch.took_ms == 0.5
    assert [h.id for h in batch[0]] == ["what-ml", "ml"] and batch[0][0].retrieval_score == pytest.approx(0.7)
    assert [h.id for h in batch[1]] == ["paris"] and batch[1][0].retrieval_score is None
    assert [[h.id for h in hits] for hits in batch][2] == ["paris"]


def test_batch_search_refuses_an_empty_list_and_a_bad_member(fake: FakeAkiDB) -> None:
    with AkiDB(fake.url) as db:
        col = db.collection("notes")
        with pytest.raises(ValueError, match="no queries"):
            col.search_many([])
        with pytest.raises(ValueError, match="either query"):
            col.search_many([{"k": 3}])
    assert fake.requests == []


async def test_async_search_and_batch_with_rerank(fake: FakeAkiDB) -> None:
    async with AsyncAkiDB(fake.url) as db:
        col = db.collection("notes")
        one = await col.search(QUERY, k=1, rerank=MODEL)
        many = await col.search_many([{"query": QUERY, "k": 1, "rerank": {"model": MODEL, "candidates": 4}}])
    assert [h.id for h in one] == ["what-ml"] and [h.id for h in many[0]] == ["what-ml"]
    assert fake.requests[1][1]["queries"][0]["rerank"] == {"model": MODEL, "candidates": 4}
