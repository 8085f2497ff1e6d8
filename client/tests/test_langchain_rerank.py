"""`AkiDBRerank` as a LangChain document compressor, alone and in a `ContextualCompressionRetriever`,
against the fake server of tests/fake.py (the live test is in tests/test_rerank_live.py)."""

from __future__ import annotations

import pytest
from akidb_client import AkiDB, NotFound
from akidb_client.langchain import AkiDBRerank, AkiDBVectorStore
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore

from tests.fake import MODEL, FakeAkiDB

QUERY = "what is machine learning"
DOCS = [
    Document("Paris is the capital of France", metadata={"topic": "geo"}, id="paris"),
    Document("Machine learning is a subset of AI", metadata={"topic": "ai"}, id="ml"),
    Document("What is machine learning? Learning from data", metadata={"topic": "ai"}, id="what-ml"),
    Document("Rome is the capital of Italy", metadata={"topic": "geo"}, id="rome"),
]


def test_compress_keeps_top_n_in_the_rerankers_order_with_scores(fake: FakeAkiDB) -> None:
    reranker = AkiDBRerank(top_n=2, url=fake.url)
    assert isinstance(reranker, BaseDocumentCompressor)
    out = reranker.compress_documents(DOCS, QUERY)
    assert [d.id for d in out] == ["what-ml", "ml"]
    assert out[0].metadata == {"topic": "ai", "relevance_score": 1.0}
    assert 0 < out[1].metadata["relevance_score"] < 1 and out[1].page_content == DOCS[1].page_content
    assert all("relevance_score" not in d.metadata for d in DOCS)  # the caller's documents are untouched
    assert fake.requests == [
        (
            "/v1/rerank",
            {"query": QUERY, "documents": [d.page_content for d in DOCS], "top_n": 2, "return_documents": False},
        )
    ]


def test_top_n_none_keeps_every_document_and_model_is_sent(fake: FakeAkiDB) -> None:
    with AkiDB(fake.url) as db:
        out = AkiDBRerank(top_n=None, model=MODEL, client=db).compress_documents(DOCS, QUERY)
    assert len(out) == 4 and [d.metadata["relevance_score"] for d in out] == sorted(
        (d.metadata["relevance_score"] for d in out), reverse=True
    )
    assert "top_n" not in fake.requests[0][1] and fake.requests[0][1]["model"] == MODEL


def test_no_documents_sends_nothing(fake: FakeAkiDB) -> None:
    assert AkiDBRerank(url=fake.url).compress_documents([], QUERY) == []
    assert fake.requests == []


def test_server_errors_are_typed(fake: FakeAkiDB) -> None:
    with pytest.raises(NotFound, match="model_not_found"):
        AkiDBRerank(url=fake.url, model="nope").compress_documents(DOCS, QUERY)


def test_settings_are_checked_and_the_key_is_not_shown() -> None:
    with pytest.raises(ValueError):
        AkiDBRerank(top_n=0)
    with pytest.raises(ValueError):
        AkiDBRerank(topn=3)  # type: ignore[call-arg]
    assert "secret-key" not in repr(AkiDBRerank(api_key="secret-key", url="http://127.0.0.1:9"))


async def test_acompress(fake: FakeAkiDB) -> None:
    out = await AkiDBRerank(top_n=1, url=fake.url).acompress_documents(DOCS, QUERY)
    assert [(d.id, d.metadata["relevance_score"]) for d in out] == [("what-ml", 1.0)]


def _retriever(fake: FakeAkiDB) -> ContextualCompressionRetriever:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents(DOCS)
    base = store.as_retriever(search_kwargs={"k": 4})
    return ContextualCompressionRetriever(base_compressor=AkiDBRerank(top_n=2, url=fake.url), base_retriever=base)


def test_in_a_contextual_compression_retriever(fake: FakeAkiDB) -> None:
    found = _retriever(fake).invoke(QUERY)
    assert [d.id for d in found] == ["what-ml", "ml"] and all("relevance_score" in d.metadata for d in found)
    # The base retriever's four documents, in its own order, were what the reranker read.
    assert sorted(fake.requests[0][1]["documents"]) == sorted(d.page_content for d in DOCS)


async def test_in_a_contextual_compression_retriever_async(fake: FakeAkiDB) -> None:
    found = await _retriever(fake).ainvoke(QUERY)
    assert [d.id for d in found] == ["what-ml", "ml"]


def test_the_vector_stores_retriever_passes_rerank_to_the_search(fake: FakeAkiDB) -> None:
    retriever = AkiDBVectorStore("notes", url=fake.url).as_retriever(search_kwargs={"k": 2, "rerank": True})
    assert [d.id for d in retriever.invoke(QUERY)] == ["what-ml", "ml"]
    assert fake.requests[0][1]["rerank"] is True and fake.requests[0][1]["query"] == QUERY
