"""`AkiDB`: the synchronous client."""

from __future__ import annotations

import time
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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


class AkiDB:
    """A connection to AkiDB: `AkiDB("http://localhost:8080", api_key=None, timeout=60)`.

    `url` defaults to AKIDB_URL (else http://localhost:8080), `api_key` to AKIDB_API_KEY. Several gateways
    of one AkiDB (a list, or URLs separated by commas): the client uses one and moves to the next when it
    refuses a connection or answers 503, retrying the call there if it is safe to repeat (reads, upserts
    with ids).
    """

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        gateways, headers = settings(url, api_key)
        self.gateways = gateways
        self.url = str(gateways)  # every gateway, comma-separated (what AKIDB_URL takes)
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(headers=headers, timeout=timeout, transport=transport)
        self.collections = Collections(self)

    def run(self, call: Call[T]) -> T:
        """Send one call, retrying as the policy allows; its parsed result or a typed error."""
        retrier = Retrier(self.retry, call, self.gateways)
        while True:
            try:
                response = self._http.request(**request_args(call, self.gateways, retrier.next_base()))
            except httpx.TransportError as exc:
                delay = retrier.after_exception(exc)
            else:
                if response.status_code < 400:
                    return parse(call, response)
                delay = retrier.after_response(response)
            time.sleep(delay)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AkiDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def embed(self, texts: str | Sequence[str], model: str | None = None, **options: Any) -> Embeddings:
        """Embed texts (one row of `.vectors` each); options: pooling, normalize, truncate."""
        return self.run(_api.embed(texts, model, **options))

    def rerank(
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
        return self.run(_api.rerank(query, documents, top_n, model, return_documents))

    def models(self) -> list[Model]:
        """The models the connected workers serve."""
        return self.run(_api.models())

    def health(self) -> Health:
        """Liveness and the number of connected workers."""
        return self.run(_api.health())

    def collection(self, name: str) -> CollectionRef:
        """A handle on a collection (by name or id) for its documents and searches; sends nothing."""
        return CollectionRef(self, name)


class Collections:
    """`db.collections`: create, get, list and delete collections."""

    def __init__(self, db: AkiDB) -> None:
        self._db = db

    def create(self, name: str, **options: Any) -> Collection:
        """Create a collection; options: dimension, metric, model, pooling, normalize, index."""
        return self._db.run(_api.create_collection(name, **options))

    def get(self, name: str) -> Collection:
        """A collection's description (NotFound if it does not exist)."""
        return self._db.run(_api.get_collection(name))

    def list(self) -> list[Collection]:
        """Every collection."""
        return self._db.run(_api.list_collections())

    def delete(self, name: str) -> str:
        """Delete a collection and its documents; its id."""
        return self._db.run(_api.delete_collection(name))

    def restore(self, path: str | Path, name: str) -> Collection:
        """Create collection `name` from a snapshot file (streamed; the server checks every checksum first)."""
        with open(path, "rb") as f:
            response = self._db._http.post(
                self._db.gateways.url("/collections/restore"),
                params={"name": name},
                content=iter(lambda: f.read(CHUNK), b""),
                headers={"Content-Type": _api.SNAPSHOT_TYPE},
            )
        return parse(Call("POST", "/collections/restore", Collection.from_json), response)


class CollectionRef:
    """The documents and searches of one collection."""

    def __init__(self, db: AkiDB, name: str) -> None:
        self.db = db
        self.name = name

    def info(self) -> Collection:
        """This collection's description."""
        return self.db.run(_api.get_collection(self.name))

    def add(self, documents: Iterable[DocLike]) -> list[Inserted]:
        """Store documents in one request (ids generated where missing; an existing id is replaced)."""
        return self.db.run(_api.insert(self.name, documents))

    def upsert(self, documents: Iterable[DocLike]) -> list[Inserted]:
        """Store or replace documents that all carry ids (so the call is safe to retry)."""
        return self.db.run(_api.insert(self.name, documents, require_ids=True))

    def get(self, doc_id: str, include_vector: bool = False) -> Document:
        """One document (NotFound if absent)."""
        return self.db.run(_api.get_document(self.name, doc_id, include_vector))

    def delete(self, ids: str | Iterable[str]) -> None:
        """Delete one document or several (NotFound for a missing one)."""
        for doc_id in [ids] if isinstance(ids, str) else ids:
            self.db.run(_api.delete_document(self.name, doc_id))

    def count(self) -> int:
        """How many documents the collection holds."""
        return self.db.run(_api.count(self.name))

    def snapshot(self) -> Snapshot:
        """Snapshot the collection now, on the server (it keeps serving meanwhile)."""
        return self.db.run(_api.create_snapshot(self.name))

    def snapshots(self) -> list[Snapshot]:
        """The collection's stored snapshots, oldest first."""
        return self.db.run(_api.list_snapshots(self.name))

    def download_snapshot(self, name: str, path: str | Path) -> Path:
        """Stream a stored snapshot into a file (written to a temporary name, renamed when complete)."""
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        try:
            with self.db._http.stream("GET", self.db.gateways.url(_api.snapshot_path(self.name, name))) as response:
                if response.status_code >= 400:
                    response.read()
                    parse(Call("GET", "", lambda b: None), response)  # raises the typed error
                with open(partial, "wb") as out:
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return target

    def delete_snapshot(self, name: str) -> None:
        """Delete a stored snapshot (NotFound if there is none by that name)."""
        self.db.run(_api.delete_snapshot(self.name, name))

    def search(
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
        return self.db.run(_api.search(self.name, query, **options))

    def search_many(self, queries: Iterable[Mapping[str, Any]]) -> BatchSearchResult:
        """Several searches in one request (their texts embedded together): one list of hits per query.

        Each query is a mapping of `search`'s arguments, e.g. `{"query": "...", "k": 3, "rerank": True}`.
        """
        return self.db.run(_api.search_many(self.name, queries))

    def page(self, limit: int = 100, after: str | None = None, include_vector: bool = False) -> Page:
        """One page of documents in insertion order; pass `page.next` as `after` for the next."""
        return self.db.run(_api.list_documents(self.name, limit, after, include_vector))

    def documents(self, page_size: int = 500, include_vector: bool = False) -> Iterator[Document]:
        """Every document, page by page."""
        after: str | None = None
        while True:
            page = self.page(page_size, after, include_vector)
            yield from page.documents
            if page.next is None:
                return
            after = page.next

    def add_documents(
        self,
        documents: Iterable[DocLike],
        *,
        batch_size: int = 256,
        concurrency: int = 4,
        progress: bool = True,
        skip_ids: Container[str] | None = None,
        total: int | None = None,
    ) -> ImportReport:
        """Stream any iterable into the collection, `concurrency` batches at a time; never holds it whole.

        Documents whose id is in `skip_ids` are skipped; a refused document is reported with the
        server's reason and the rest go on. `total` (if known) gives the progress bar an ETA.
        """
        report = ImportReport()
        stream = _ingest.batches(_ingest.prepare(documents, report, skip_ids), batch_size)
        with _ingest.progress_bar(progress, total) as bar, ThreadPoolExecutor(max(1, concurrency)) as pool:
            pending: set[Future[_ingest.Outcome]] = set()
            for batch in stream:
                if len(pending) >= concurrency:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        _ingest.tally(report, f.result(), bar)
                pending.add(pool.submit(self._store, batch))
            for f in pending:
                _ingest.tally(report, f.result(), bar)
        return report

    def _store(self, batch: list[Doc]) -> _ingest.Outcome:
        steps = _ingest.store(self.name, batch)
        try:
            call = next(steps)
            while True:
                try:
                    result = self.db.run(call)
                except AkiDBError as exc:
                    call = steps.throw(exc)
                else:
                    call = steps.send(result)
        except StopIteration as stop:
            outcome: _ingest.Outcome = stop.value
            return outcome
