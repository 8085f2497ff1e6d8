"""LangChain's own standard test suites, run against a real gateway and worker.

Two vector-store suites: the default (the server embeds texts and queries with the collection's
model) and a user-supplied `Embeddings` (vectors sent, queries embedded locally).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from akidb_client.langchain import AkiDBEmbeddings, AkiDBVectorStore
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, VectorStoreIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from tests.server import Server, shared

# An AkiDB collection takes its model's dimension (384 for the default all-MiniLM-L6-v2), so the
# suite's deterministic fake embeddings are made at that size instead of the default 6; they are the
# same class and equally deterministic, and no standard test depends on the size.
DIMENSION = 384


def _store(server: Server, embedding: Embeddings | None) -> Iterator[AkiDBVectorStore]:
    store = AkiDBVectorStore(f"lc-{uuid.uuid4().hex[:12]}", url=server.url, embedding=embedding)
    try:
        yield store
    finally:
        store.delete_collection()


class TestServerSideEmbedding(VectorStoreIntegrationTests):
    """The default: no local model, AkiDB embeds."""

    @pytest.fixture
    def vectorstore(self, server: Server) -> Iterator[AkiDBVectorStore]:  # type: ignore[override]
        yield from _store(server, None)


class TestUserEmbeddings(VectorStoreIntegrationTests):
    """A user-supplied Embeddings: the store sends vectors and embeds queries itself."""

    @staticmethod
    def get_embeddings() -> Embeddings:
        return DeterministicFakeEmbedding(size=DIMENSION)

    @pytest.fixture
    def vectorstore(self, server: Server) -> Iterator[AkiDBVectorStore]:  # type: ignore[override]
        yield from _store(server, self.get_embeddings())


class TestAkiDBEmbeddings(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[AkiDBEmbeddings]:
        return AkiDBEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"url": shared().url}


class TestAkiDBEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[AkiDBEmbeddings]:
        return AkiDBEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"url": "http://127.0.0.1:9", "model": "all-MiniLM-L6-v2"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return {"AKIDB_URL": "http://akidb.example:8080"}, {}, {"url": "http://akidb.example:8080"}


def test_store_with_the_servers_model_finds_by_meaning(server: Server) -> None:
    """Beyond the suites: server-side embedding ranks by meaning, scores map to relevance, filters work."""
    docs = ["Machine learning is a subset of artificial intelligence", "Paris is the capital of France"]
    store = AkiDBVectorStore.from_texts(docs, metadatas=[{"topic": "ai"}, {"topic": "geo"}], url=server.url)
    try:
        assert store.similarity_search("What is machine learning?", k=1)[0].page_content == docs[0]
        assert store.similarity_search("What is machine learning?", k=2, filter={"topic": "geo"})[0].metadata == {
            "topic": "geo"
        }
        (doc, relevance), _ = store.similarity_search_with_relevance_scores("What is machine learning?", k=2)
        assert doc.page_content == docs[0] and 0.5 < relevance <= 1.0
        retriever = store.as_retriever(search_kwargs={"k": 1})
        assert retriever.invoke("the capital of France")[0].metadata == {"topic": "geo"}
        embeddings = AkiDBEmbeddings(url=server.url)
        vec = embeddings.embed_query("the capital of France")
        assert store.similarity_search_by_vector(vec, k=1)[0].page_content == docs[1]
    finally:
        store.delete_collection()
