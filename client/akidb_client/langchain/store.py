"""`AkiDBVectorStore` (a langchain_core VectorStore) and `AkiDBEmbeddings`.

By default AkiDB embeds texts and queries itself (no local model); pass `embedding=` to use your own
`Embeddings` instead, on a collection whose dimension is that of its vectors.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext, suppress
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from akidb_client.aio import AsyncAkiDB
from akidb_client.client import AkiDB
from akidb_client.errors import Conflict, NotFound
from akidb_client.types import Document as StoredDocument
from akidb_client.types import SearchResult

BATCH = 500  # documents per insert request (the server takes up to 1,000 by default)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    it = iter(range(0, len(items), size))
    return (items[i : i + size] for i in it)


class AkiDBEmbeddings(Embeddings):
    """A LangChain `Embeddings` over AkiDB's `/embed` (url from AKIDB_URL unless given)."""

    def __init__(
        self,
        model: str | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        batch_size: int = 512,
        client: AkiDB | None = None,
    ) -> None:
        self.client = client or AkiDB(url, api_key=api_key)
        self.url = self.client.url
        self._api_key = api_key
        self.model = model
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        out: list[list[float]] = []
        for chunk in _chunks(texts, self.batch_size):
            out.extend(self.client.embed(list(chunk), self.model).vectors.tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query text."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        out: list[list[float]] = []
        async with AsyncAkiDB(self.url, api_key=self._api_key) as db:
            for chunk in _chunks(texts, self.batch_size):
                out.extend((await db.embed(list(chunk), self.model)).vectors.tolist())
        return out

    async def aembed_query(self, text: str) -> list[float]:
        """The vector of one query text."""
        return (await self.aembed_documents([text]))[0]


class AkiDBVectorStore(VectorStore):
    """An AkiDB collection as a LangChain vector store.

    `AkiDBVectorStore("notes")` stores texts that the server embeds with the collection's model;
    `AkiDBVectorStore("notes", embedding=my_embeddings)` sends your vectors instead. The collection
    is created on the first write if it does not exist (`collection_options`: model, metric, ...).
    """

    def __init__(
        self,
        collection: str,
        *,
        embedding: Embeddings | None = None,
        url: str | None = None,
        api_key: str | None = None,
        client: AkiDB | None = None,
        async_client: AsyncAkiDB | None = None,
        collection_options: dict[str, Any] | None = None,
    ) -> None:
        self.client = client or AkiDB(url, api_key=api_key)
        self.collection_name = collection
        self._embedding = embedding
        self._async_client = async_client
        self._api_key = api_key
        self._options = dict(collection_options or {})
        self._metric: str | None = None

    @property
    def embeddings(self) -> Embeddings | None:
        """The user's Embeddings, or None when the server embeds."""
        return self._embedding

    @property
    def collection(self) -> Any:
        return self.client.collection(self.collection_name)

    def _aclient(self) -> AbstractAsyncContextManager[AsyncAkiDB]:
        # A client per call unless one was given: an httpx.AsyncClient is bound to one event loop.
        if self._async_client is not None:
            return nullcontext(self._async_client)
        return AsyncAkiDB(self.client.url, api_key=self._api_key)

    # --- writing

    def _rows(
        self, texts: Iterable[str], metadatas: Sequence[dict[str, Any] | None] | None, ids: Sequence[str | None] | None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        out_ids = [(ids[i] if ids is not None else None) or uuid.uuid4().hex for i in range(len(texts))]
        rows = [
            {"id": out_ids[i], "text": t, "metadata": dict(metadatas[i] or {}) if metadatas is not None else {}}
            for i, t in enumerate(texts)
        ]
        return rows, out_ids

    def _create_options(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        options = dict(self._options)
        if rows and "vector" in rows[0]:
            options.setdefault("dimension", len(rows[0]["vector"]))
        return options

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Store texts (with metadata); an existing id is replaced. The ids, in order."""
        rows, out_ids = self._rows(texts, metadatas, ids)
        if self._embedding is not None and rows:
            for row, vec in zip(rows, self._embedding.embed_documents([r["text"] for r in rows]), strict=True):
                row["vector"] = vec
        for chunk in _chunks(rows, BATCH):
            try:
                self.collection.upsert(chunk)
            except NotFound:
                self._create(rows)
                self.collection.upsert(chunk)
        return out_ids

    def _create(self, rows: list[dict[str, Any]]) -> None:
        with suppress(Conflict):  # someone else made it meanwhile
            self.client.collections.create(self.collection_name, **self._create_options(rows))

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Store texts (with metadata); an existing id is replaced. The ids, in order."""
        rows, out_ids = self._rows(texts, metadatas, ids)
        if self._embedding is not None and rows:
            vectors = await self._embedding.aembed_documents([r["text"] for r in rows])
            for row, vec in zip(rows, vectors, strict=True):
                row["vector"] = vec
        async with self._aclient() as db:
            col = db.collection(self.collection_name)
            for chunk in _chunks(rows, BATCH):
                try:
                    await col.upsert(chunk)
                except NotFound:
                    with suppress(Conflict):
                        await db.collections.create(self.collection_name, **self._create_options(rows))
                    await col.upsert(chunk)
        return out_ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete documents by id (missing ones are ignored); without ids, nothing is deleted."""
        for doc_id in ids or []:
            with suppress(NotFound):
                self.collection.delete(doc_id)
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete documents by id (missing ones are ignored)."""
        async with self._aclient() as db:
            for doc_id in ids or []:
                with suppress(NotFound):
                    await db.collection(self.collection_name).delete(doc_id)
        return True

    def delete_collection(self) -> None:
        """Delete the whole collection (if it exists)."""
        with suppress(NotFound):
            self.client.collections.delete(self.collection_name)

    # --- reading

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in that order; missing ids are left out."""
        out = []
        for doc_id in ids:
            try:
                out.append(_document(self.collection.get(doc_id)))
            except NotFound:
                continue
        return out

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in that order; missing ids are left out."""
        out = []
        async with self._aclient() as db:
            for doc_id in ids:
                try:
                    out.append(_document(await db.collection(self.collection_name).get(doc_id)))
                except NotFound:
                    continue
        return out

    def _query(self, query: str) -> dict[str, Any]:
        if self._embedding is None:
            return {"query": query}
        return {"vector": self._embedding.embed_query(query)}

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The k nearest documents with their scores (see docs/collections.md#scores), best first."""
        return self._search(self._query(query), k, filter, kwargs)

    def similarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The k nearest documents to a text, best first."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The k nearest documents to a vector, best first."""
        return [doc for doc, _ in self._search({"vector": embedding}, k, filter, kwargs)]

    def _search(
        self, q: dict[str, Any], k: int, flt: dict[str, Any] | None, extra: dict[str, Any]
    ) -> list[tuple[Document, float]]:
        try:
            result = self.collection.search(q.get("query"), vector=q.get("vector"), k=k, filter=flt, **extra)
        except NotFound:
            return []  # nothing was ever added
        return _scored(result)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The k nearest documents with their scores, best first."""
        if self._embedding is None:
            q: dict[str, Any] = {"query": query}
        else:
            q = {"vector": await self._embedding.aembed_query(query)}
        return await self._asearch(q, k, filter, kwargs)

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The k nearest documents to a text, best first."""
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, filter, **kwargs)]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The k nearest documents to a vector, best first."""
        return [doc for doc, _ in await self._asearch({"vector": embedding}, k, filter, kwargs)]

    async def _asearch(
        self, q: dict[str, Any], k: int, flt: dict[str, Any] | None, extra: dict[str, Any]
    ) -> list[tuple[Document, float]]:
        async with self._aclient() as db:
            try:
                col = db.collection(self.collection_name)
                result = await col.search(q.get("query"), vector=q.get("vector"), k=k, filter=flt, **extra)
            except NotFound:
                return []
        return _scored(result)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Scores to 0..1 relevance: similarity for cosine/ip, distance for l2."""
        if self._metric is None:
            try:
                self._metric = self.collection.info().metric
            except NotFound:
                self._metric = self._options.get("metric", "cosine")
        if self._metric == "l2":
            return self._euclidean_relevance_score_fn
        return lambda score: (score + 1.0) / 2.0

    # --- construction

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        collection: str | None = None,
        **kwargs: Any,
    ) -> AkiDBVectorStore:
        """A store over `collection` (default: a new uuid-named one) holding these texts."""
        store = cls(collection or f"langchain-{uuid.uuid4().hex[:12]}", embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _document(doc: StoredDocument) -> Document:
    return Document(id=doc.id, page_content=doc.text or "", metadata=doc.metadata or {})


def _scored(result: SearchResult) -> list[tuple[Document, float]]:
    return [(Document(id=h.id, page_content=h.text or "", metadata=h.metadata or {}), h.score) for h in result]


__all__ = ["AkiDBEmbeddings", "AkiDBVectorStore"]
