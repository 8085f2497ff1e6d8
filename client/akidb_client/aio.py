"""`AsyncAkiDB`: the asyncio client, the same calls as `AkiDB`, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Container, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from akidb_client import _api, _ingest
from akidb_client._api import Call, DocLike, RerankOption
from akidb_client._retry import RetryPolicy
from akidb_client._transport import DEFAULT_TIMEOUT_S, Retrier, parse, request_args, settings
from akidb_client.errors import AkiDBError
from akidb_client.types import (
    BatchSearchResult,
    Collection,
    Doc,
    Document,
    Embeddings,
    Health,
    ImportReport,
    Inserted,
    Model,
    Page,
    Reranking,
    SearchResult,
    Snapshot,
)

T = TypeVar("T")
CHUNK = 1 << 20  # bytes per read when a snapshot file streams up or down


class AsyncAkiDB:
    """`async with AsyncAkiDB(url, api_key=None, timeout=60) as db: ...` (see `AkiDB`)."""

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        gateways, headers = settings(url, api_key)
        self.gateways = gateways
        self.url = str(gateways)  # every gateway, comma-separated (what AKIDB_URL takes)
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport)
        self.collections = AsyncCollections(self)

    async def run(self, call: Call[T]) -> T:
        """Send one call, retrying as the policy allows; its parsed result or a typed error."""
        retrier = Retrier(self.retry, call, self.gateways)
        while True:
            try:
                response = await self._http.request(**request_args(call, self.gateways, retrier.next_base()))
            except httpx.TransportError as exc:
                delay = retrier.after_exception(exc)
            else:
                if response.status_code < 400:
                    return parse(call, response)
                delay = retrier.after_response(response)
            await asyncio.sleep(delay)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAkiDB:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def embed(self, texts: str | Sequence[str], model: str | None = None, **options: Any) -> Embeddings:
        """Embed texts (one row of `.vectors` each); options: pooling, normalize, truncate."""
        return await self.run(_api.embed(texts, model, **options))

    async def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        model: str | None = None,
        return_documents: bool = False,
    ) -> Reranking:
        """Order documents by relevance to the query with a reranker (cross-encoder), best first.

        Each result's `index` is the document's position in `documents`; `top_n` keeps the best n;
        `model` names a reranker (default: the server's); `return_documents` sends the texts back.
        """
        return await self.run(_api.rerank(query, documents, top_n, model, return_documents))

    async def models(self) -> list[Model]:
        """The models the connected workers serve."""
        return await self.run(_api.models())

    async def health(self) -> Health:
        """Liveness and the number of connected workers."""
        return await self.run(_api.health())

    def collection(self, name: str) -> AsyncCollectionRef:
        """A handle on a collection (by name or id) for its documents and searches; sends nothing."""
        return AsyncCollectionRef(self, name)


class AsyncCollections:
    """`db.collections`: create, get, list and delete collections."""

    def __init__(self, db: AsyncAkiDB) -> None:
        self._db = db

    async def create(self, name: str, **options: Any) -> Collection:
        """Create a collection; options: dimension, metric, model, pooling, normalize, index."""
        return await self._db.run(_api.create_collection(name, **options))

    async def get(self, name: str) -> Collection:
        """A collection's description (NotFound if it does not exist)."""
        return await self._db.run(_api.get_collection(name))

    async def list(self) -> list[Collection]:
        """Every collection."""
        return await self._db.run(_api.list_collections())

    async def restore(self, path: str | Path, name: str) -> Collection:
        """Create collection `name` from a snapshot file (streamed; the server checks every checksum first)."""

        async def chunks() -> AsyncIterator[bytes]:
            with open(path, "rb") as f:  # noqa: ASYNC230 - reads of CHUNK bytes, handed over as they come
                while chunk := await asyncio.to_thread(f.read, CHUNK):
                    yield chunk

        response = await self._db._http.post(
            self._db.gateways.url("/collections/restore"),
            params={"name": name},
            content=chunks(),
            headers={"Content-Type": _api.SNAPSHOT_TYPE},
        )
        return parse(Call("POST", "/collections/restore", Collection.from_json), response)

    async def delete(self, name: str) -> str:
        """Delete a collection and its documents; its id."""
        return await self._db.run(_api.delete_collection(name))


class AsyncCollectionRef:
    """The documents and searches of one collection."""

    def __init__(self, db: AsyncAkiDB, name: str) -> None:
        self.db = db
        self.name = name

    async def info(self) -> Collection:
        """This collection's description."""
        return await self.db.run(_api.get_collection(self.name))

    async def add(self, documents: Iterable[DocLike]) -> list[Inserted]:
        """Store documents in one request (ids generated where missing; an existing id is replaced)."""
        return await self.db.run(_api.insert(self.name, documents))

    async def upsert(self, documents: Iterable[DocLike]) -> list[Inserted]:
        """Store or replace documents that all carry ids (so the call is safe to retry)."""
        return await self.db.run(_api.insert(self.name, documents, require_ids=True))

    async def get(self, doc_id: str, include_vector: bool = False) -> Document:
        """One document (NotFound if absent)."""
        return await self.db.run(_api.get_document(self.name, doc_id, include_vector))

    async def delete(self, ids: str | Iterable[str]) -> None:
        """Delete one document or several (NotFound for a missing one)."""
        for doc_id in [ids] if isinstance(ids, str) else ids:
            await self.db.run(_api.delete_document(self.name, doc_id))

    async def count(self) -> int:
        """How many documents the collection holds."""
        return await self.db.run(_api.count(self.name))

    async def snapshot(self) -> Snapshot:
        """Snapshot the collection now, on the server (it keeps serving meanwhile)."""
        return await self.db.run(_api.create_snapshot(self.name))

    async def snapshots(self) -> list[Snapshot]:
        """The collection's stored snapshots, oldest first."""
        return await self.db.run(_api.list_snapshots(self.name))

    async def download_snapshot(self, name: str, path: str | Path) -> Path:
        """Stream a stored snapshot into a file (written to a temporary name, renamed when complete)."""
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        try:
            async with self.db._http.stream(
                "GET", self.db.gateways.url(_api.snapshot_path(self.name, name))
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    parse(Call("GET", "", lambda b: None), response)  # raises the typed error
                with open(partial, "wb") as out:  # noqa: ASYNC230 - each chunk is written off the loop
                    async for chunk in response.aiter_bytes(CHUNK):
                        await asyncio.to_thread(out.write, chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return target

    async def delete_snapshot(self, name: str) -> None:
        """Delete a stored snapshot (NotFound if there is none by that name)."""
        await self.db.run(_api.delete_snapshot(self.name, name))

    async def search(
        self,
        query: str | None = None,
        *,
        vector: Any = None,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        include: Sequence[str] | None = None,
        rerank: RerankOption = None,
        **extra: Any,
    ) -> SearchResult:
        """Nearest documents to a text or a vector, best first.

        `rerank=True` (the default reranker), a reranker's name, or `{"model": ..., "candidates": 50}`:
        the search fetches `candidates` by its mode, a reranker orders them against the query's text,
        and the best `k` come back scored by it (`retrieval_score` too, with `include=[..., "ranks"]`).
        `extra`: mode, alpha, keyword_syntax (and any later field, passed through).
        """
        options = dict(vector=vector, k=k, filter=filter, include=include, rerank=rerank, **extra)
        return await self.db.run(_api.search(self.name, query, **options))

    async def search_many(self, queries: Iterable[Mapping[str, Any]]) -> BatchSearchResult:
        """Several searches in one request (their texts embedded together): one list of hits per query.

        Each query is a mapping of `search`'s arguments, e.g. `{"query": "...", "k": 3, "rerank": True}`.
        """
        return await self.db.run(_api.search_many(self.name, queries))

    async def page(self, limit: int = 100, after: str | None = None, include_vector: bool = False) -> Page:
        """One page of documents in insertion order; pass `page.next` as `after` for the next."""
        return await self.db.run(_api.list_documents(self.name, limit, after, include_vector))

    async def documents(self, page_size: int = 500, include_vector: bool = False) -> AsyncIterator[Document]:
        """Every document, page by page."""
        after: str | None = None
        while True:
            page = await self.page(page_size, after, include_vector)
            for doc in page.documents:
                yield doc
            if page.next is None:
                return
            after = page.next

    async def add_documents(
        self,
        documents: Iterable[DocLike],
        *,
        batch_size: int = 256,
        concurrency: int = 4,
        progress: bool = True,
        skip_ids: Container[str] | None = None,
        total: int | None = None,
    ) -> ImportReport:
        """Stream any iterable into the collection, `concurrency` batches at a time (see `AkiDB`)."""
        report = ImportReport()
        stream = _ingest.batches(_ingest.prepare(documents, report, skip_ids), batch_size)
        with _ingest.progress_bar(progress, total) as bar:
            pending: set[asyncio.Task[_ingest.Outcome]] = set()
            for batch in stream:
                if len(pending) >= concurrency:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for t in done:
                        _ingest.tally(report, t.result(), bar)
                pending.add(asyncio.create_task(self._store(batch)))
            for next_done in asyncio.as_completed(pending):
                _ingest.tally(report, await next_done, bar)
        return report

    async def _store(self, batch: list[Doc]) -> _ingest.Outcome:
        steps = _ingest.store(self.name, batch)
        try:
            call = next(steps)
            while True:
                try:
                    result = await self.db.run(call)
                except AkiDBError as exc:
                    call = steps.throw(exc)
                else:
                    call = steps.send(result)
        except StopIteration as stop:
            outcome: _ingest.Outcome = stop.value
            return outcome
