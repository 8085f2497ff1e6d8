"""`AkiDBRerank`: AkiDB's reranker as a LangChain document compressor.

Put it after any retriever in a `ContextualCompressionRetriever`: the retriever fetches generously
(say 20-50 documents), the reranker (a cross-encoder on AkiDB's workers) reads each beside the query
and keeps the best `top_n`, each with its score in `metadata["relevance_score"]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr

from akidb_client.aio import AsyncAkiDB
from akidb_client.client import AkiDB
from akidb_client.types import Reranking


class AkiDBRerank(BaseDocumentCompressor):
    """Reorder documents by relevance to the query with AkiDB's `POST /v1/rerank` and keep the best `top_n`.

    `AkiDBRerank(top_n=3, model=None, url=None, api_key=None)`: `model` names a reranker (default: the
    server's), `url` and `api_key` default to AKIDB_URL and AKIDB_API_KEY; `top_n=None` keeps them all.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    top_n: int | None = Field(default=3, ge=1)
    model: str | None = None
    url: str | None = None
    api_key: str | None = Field(default=None, repr=False, exclude=True)
    client: AkiDB | None = Field(default=None, repr=False, exclude=True)
    _db: AkiDB | None = PrivateAttr(default=None)

    def _client(self) -> AkiDB:
        if self.client is not None:
            return self.client
        if self._db is None:
            self._db = AkiDB(self.url, api_key=self.api_key)
        return self._db

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The best `top_n` documents for the query, best first, each with `metadata["relevance_score"]`."""
        if not documents:
            return []  # nothing to score: no request (the server refuses an empty list)
        texts = [d.page_content for d in documents]
        return _scored(documents, self._client().rerank(query, texts, top_n=self.top_n, model=self.model))

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """`compress_documents`, awaited on the asyncio client."""
        if not documents:
            return []
        url = self.client.url if self.client is not None else self.url
        async with AsyncAkiDB(url, api_key=self.api_key) as db:
            ranked = await db.rerank(query, [d.page_content for d in documents], top_n=self.top_n, model=self.model)
        return _scored(documents, ranked)


def _scored(documents: Sequence[Document], ranked: Reranking) -> list[Document]:
    """Copies of the ranked documents in the reranker's order, the score added to their metadata."""
    out = []
    for r in ranked:
        doc = documents[r.index]
        metadata: dict[str, Any] = {**doc.metadata, "relevance_score": r.relevance_score}
        out.append(Document(page_content=doc.page_content, metadata=metadata, id=doc.id))
    return out
