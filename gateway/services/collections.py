"""The collection service: collections tied to embedding, above both the storage engine and the embedding service.

Async methods validate against the collection, embed through the gateway's `EmbeddingService`
(one call per request, however many documents), then hand disk and index work to threads:
each collection's own writer thread for changes, a shared pool for reads. Collection, document and
vector errors are storage's own (`gateway.storage.errors`), mapped to API errors in `gateway.errors`;
model errors come from the embedding service as API errors already.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import orjson
import structlog

from gateway.errors import ModelNotFound
from gateway.services.collection_inputs import CollectionSpec, DocumentInput, SearchQuery
from gateway.services.deferred import DeferredWrites
from gateway.services.embedding import EmbeddingService, EmbedRequest
from gateway.storage.collection import Collection, CollectionInfo, Hit, TextQuery, refused_when_full
from gateway.storage.datadir import DataDir
from gateway.storage.db import NewDocument, StoredDocument
from gateway.storage.errors import (
    CollectionExists,
    CollectionNotFound,
    DimensionMismatch,
    DocumentNotFound,
    InvalidVector,
    ModelChanged,
)
from gateway.storage.index import IndexParams
from gateway.storage.metrics import StorageMetrics
from shared import models
from shared.config import Config

log = structlog.get_logger("gateway.storage")
T = TypeVar("T")


class CollectionService:
    """Collections by id and by name; documents and search within them."""

    def __init__(self, cfg: Config, embedding: EmbeddingService, metrics: StorageMetrics) -> None:
        self.cfg = cfg.storage
        self.default_normalize = cfg.embedding.normalize
        self.embedding = embedding
        self.metrics = metrics
        self.data = DataDir(cfg.storage.data_dir)
        self.deferred = DeferredWrites(self.data.root, self.data.has_room, metrics)
        self.readers = ThreadPoolExecutor(max_workers=cfg.storage.read_threads, thread_name_prefix="akidb-read")
        self._by_id: dict[str, Collection] = {}
        self._create_lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Lock the data directory and open every collection in it (raises `StorageError`)."""
        await asyncio.to_thread(self.data.acquire)
        self.metrics.watch_free_space(self.data.root)
        try:
            for folder in self.data.existing():
                col = await asyncio.to_thread(self._open, folder)
                self._register(col)
        except BaseException:
            await self.close()
            raise
        await self.deferred.check()
        self.deferred.start()

    async def close(self) -> None:
        """Save every index that changed, close everything, release the lock."""
        await self.deferred.close()
        for col in list(self._by_id.values()):
            await asyncio.get_running_loop().run_in_executor(col.writer, col.close, True)
            col.writer.shutdown()
        self._by_id.clear()
        await asyncio.to_thread(self.readers.shutdown)  # waits for reads in flight, off the loop
        self.data.release()

    def _open(self, folder: Path) -> Collection:
        return Collection.open(folder, self.cfg.snapshot_every, self.metrics, self.cfg.filter_memory_mb * 2**20)

    def _register(self, col: Collection) -> None:
        self._by_id[col.info.id] = col
        self.metrics.documents.labels(col.info.name).set(len(col.index))
        # What the disk had no room for when the collection opened, in the order it can be done.
        if col.store.readonly:
            self.deferred.wait_for_space(
                f"writes to collection {col.info.name!r}", self._on_writer(col, col.make_writable)
            )
        if not col.has_fulltext:
            name = f"full-text index of collection {col.info.name!r}"
            self.deferred.wait_for_space(name, self._on_writer(col, col.ensure_fulltext))

    @staticmethod
    def _on_writer(col: Collection, fn: Callable[[], T]) -> Callable[[], Awaitable[T]]:
        """`fn` as a write to run later on the collection's writer thread (ordered with its inserts)."""

        async def write() -> T:
            if col.closed:
                raise CollectionNotFound(f"collection {col.info.name!r} was deleted", param="collection")
            return await asyncio.get_running_loop().run_in_executor(col.writer, fn)

        return write

    # -- collections --------------------------------------------------------------------------
    def get(self, ref: str) -> Collection:
        """A collection by id or by name; `CollectionNotFound` otherwise."""
        col = self._by_id.get(ref)
        if col is None:
            col = next((c for c in self._by_id.values() if c.info.name == ref), None)
        if col is None:
            raise CollectionNotFound(f"no collection {ref!r}; GET /collections lists them", param="collection")
        return col

    def name_of(self, ref: str) -> str:
        """The name of the collection `ref` names: its own name when it is a collection's id, else `ref` itself
        (a name, or one no collection has: what a key's patterns are checked against either way)."""
        col = self._by_id.get(ref)
        return ref if col is None else col.info.name

    def opened(self) -> list[Collection]:
        """Every open collection."""
        return list(self._by_id.values())

    def listed(self) -> list[Collection]:
        """Every open collection, oldest first (as GET /collections lists them)."""
        return sorted(self._by_id.values(), key=lambda c: c.info.created_at)

    async def create(self, spec: CollectionSpec) -> Collection:
        """Make a collection; its dimension comes from the model unless given (and then must agree)."""
        # Shielded: a client that disconnects (its handler is cancelled) must not leave a collection on
        # disk that the service does not know, which a retry would then create a second time.
        return await asyncio.shield(self._create(spec))

    async def _create(self, spec: CollectionSpec) -> Collection:
        async with self._create_lock:
            self.check_name_free(spec.name)
            info = self._describe_new(spec)
            col = await asyncio.to_thread(self._create_files, info)
            self._register(col)
        log.info("collection_created", collection=info.name, id=info.id, dimension=info.dimension, model=info.model)
        return col

    def _describe_new(self, spec: CollectionSpec) -> CollectionInfo:
        model, dimension, pooling = self._model_facts(spec)
        return CollectionInfo(
            id="col_" + secrets.token_hex(8),
            name=spec.name,
            dimension=dimension,
            metric=spec.metric,
            model=model,
            pooling=spec.pooling or pooling,
            normalize=self.default_normalize if spec.normalize is None else spec.normalize,
            index=IndexParams(
                connectivity=spec.connectivity or self.cfg.connectivity,
                expansion_add=spec.expansion_add or self.cfg.expansion_add,
                expansion_search=spec.expansion_search or self.cfg.expansion_search,
                dtype=self.cfg.index_dtype,
            ),
            created_at=time.time(),
        )

    def _model_facts(self, spec: CollectionSpec) -> tuple[str, int, str | None]:
        """(canonical model, dimension, its pooling): from a connected worker, else the registry."""
        name = models.canonical(spec.model or self.embedding.default_model)
        info = self.embedding.workers.model_info(name)
        if info is not None:
            if spec.dimension is not None and spec.dimension != info.dimension:
                raise DimensionMismatch(
                    f"dimension {spec.dimension} does not match model {info.name!r}, which makes "
                    f"{info.dimension}-dimensional vectors; leave dimension out to use the model's",
                    param="dimension",
                )
            return info.name, info.dimension, info.pooling
        if spec.dimension is None:
            self.embedding.resolve_model(name)  # raises: no worker to ask, or an unknown model
        known = models.find(name)
        if known is None:
            raise ModelNotFound(f"model {name!r} is not known here and no worker serves it", param="model")
        # No worker has announced the model yet: trust the given dimension; embeddings are checked later.
        return known.name, int(spec.dimension or 0), known.pooling

    async def restore(self, name: str, unpack: Callable[[Path], str]) -> Collection:
        """Make collection `name` from files `unpack` puts in its empty folder (it returns their description,
        as JSON). Whatever `unpack` raises, nothing is created."""
        return await asyncio.shield(self._restore(name, unpack))

    async def _restore(self, name: str, unpack: Callable[[Path], str]) -> Collection:
        # Verified and unpacked before taking the create lock: a large snapshot holds up no other create.
        staging, info = await asyncio.to_thread(self._unpack, name, unpack)
        try:
            async with self._create_lock:
                self.check_name_free(name)
                col = await asyncio.to_thread(self._publish, staging, info)
                self._register(col)
        except BaseException:
            await asyncio.to_thread(self.data.remove, staging)  # a no-op once published
            raise
        log.info("collection_restored", collection=name, id=info.id, documents=len(col.index))
        return col

    def check_name_free(self, name: str) -> None:
        """`CollectionExists` if a collection has this name."""
        if any(c.info.name == name for c in self._by_id.values()):
            raise CollectionExists(f"a collection named {name!r} already exists", param="name")

    def _unpack(self, name: str, unpack: Callable[[Path], str]) -> tuple[Path, CollectionInfo]:
        """A staging folder holding the unpacked collection, described anew (new id and name)."""
        collection_id = "col_" + secrets.token_hex(8)
        with refused_when_full(self.data.collections):
            staging = self.data.staging(collection_id)
        try:
            with refused_when_full(staging):
                old = CollectionInfo.from_json(unpack(staging))
            info = dataclasses.replace(old, id=collection_id, name=name, created_at=time.time())
            Collection.initialise(staging, info)
        except BaseException:
            self.data.remove(staging)
            raise
        return staging, info

    def _publish(self, staging: Path, info: CollectionInfo) -> Collection:
        folder = self.data.publish(staging, info.id)
        try:
            return self._open(folder)
        except BaseException:
            self.data.remove(folder)  # not served, so not kept: a restart would open it
            raise

    def _create_files(self, info: CollectionInfo) -> Collection:
        with refused_when_full(self.data.collections):
            staging = self.data.staging(info.id)
        try:
            Collection.initialise(staging, info)
        except BaseException:
            self.data.remove(staging)  # a full disk leaves no half-made collection behind
            raise
        folder = self.data.publish(staging, info.id)
        return self._open(folder)

    async def delete(self, ref: str) -> str:
        """Remove a collection and its files; later requests for it are 404."""
        col = self.get(ref)
        del self._by_id[col.info.id]
        self.metrics.documents.remove(col.info.name)
        await asyncio.get_running_loop().run_in_executor(col.writer, self._destroy, col)
        col.writer.shutdown()
        log.info("collection_deleted", collection=col.info.name, id=col.info.id)
        return col.info.id

    def _destroy(self, col: Collection) -> None:
        col.close(save=False)
        self.data.remove(col.folder)

    # -- documents ----------------------------------------------------------------------------
    async def insert(self, ref: str, docs: list[DocumentInput]) -> list[dict[str, Any]]:
        """Store documents all-or-nothing; returns `{"id", "vector_generated"}` per document."""
        started = time.perf_counter()
        col = self.get(ref)
        info = col.info  # what the vectors are made for: a re-embedding's swap meanwhile refuses them
        to_embed = [i for i, d in enumerate(docs) if d.vector is None]
        given = [i for i, d in enumerate(docs) if d.vector is not None]
        given_rows = [d.vector for d in docs if d.vector is not None]
        vectors = np.empty((len(docs), col.info.dimension), dtype=np.float32)
        # Checked (and normalised) as one matrix: per-row numpy calls cost ~10 ms of event loop
        # per 1,000 documents; given vectors are refused before any text is embedded.
        if given:
            vectors[given] = self._prepare(col, given_rows)
        if to_embed:
            embedded = await self._embed(col, tuple(docs[i].text or "" for i in to_embed), "document")
            self._check_model(col, info)
            vectors[to_embed] = self._prepare(col, list(embedded), what="embedding")
        ready = [
            NewDocument(
                doc_id=d.doc_id or uuid.uuid4().hex,
                text=d.text,
                metadata=None if d.metadata is None else orjson.dumps(d.metadata).decode(),
                vector=v,
                generated=d.vector is None,
            )
            for d, v in zip(docs, vectors, strict=True)
        ]
        # Shielded: once handed to the writer the documents are stored even if the client leaves,
        # so the metrics must follow them.
        await asyncio.shield(self._store(col, ready, len(to_embed), started, info))
        return [{"id": d.doc_id, "vector_generated": d.generated} for d in ready]

    async def _store(
        self, col: Collection, ready: list[NewDocument], embedded: int, started: float, info: CollectionInfo
    ) -> None:
        await self._write(col, col.upsert, ready, info)
        self.metrics.inserted.labels("embedded").inc(embedded)
        self.metrics.inserted.labels("vector").inc(len(ready) - embedded)
        self.metrics.documents.labels(col.info.name).set(len(col.index))
        self.metrics.insert_latency.observe(time.perf_counter() - started)

    async def _write(self, col: Collection, fn: Callable[..., T], *args: Any) -> T:
        """Run a change on the collection's writer thread (one at a time, in order)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(col.writer, fn, *args)
        except RuntimeError:  # the writer was shut down: the collection was deleted meanwhile
            if col.closed:
                raise CollectionNotFound(f"collection {col.info.name!r} was deleted", param="collection") from None
            raise

    async def _embed(self, col: Collection, texts: tuple[str, ...], input_type: str) -> np.ndarray:
        """Documents embed with the model's document prompt, search texts with its query prompt."""
        info = col.info
        req = EmbedRequest(
            texts, model=info.model, pooling=info.pooling, normalize=info.normalize, input_type=input_type
        )
        out = await self.embedding.embed(req, transport="collections")
        return out.vectors

    @staticmethod
    def _check_model(col: Collection, info: CollectionInfo) -> None:
        """`ModelChanged` if a re-embedding swapped the collection's model while texts were embedded."""
        if col.info is not info:
            raise ModelChanged(f"collection {col.info.name!r} switched to model {col.info.model!r}; retry")

    def _prepare(self, col: Collection, rows: list[np.ndarray], what: str = "vector") -> np.ndarray:
        """Check each vector's length; for cosine, scale them to unit length (a zero vector has no direction)."""
        expected = col.info.dimension
        for vector in rows:
            if vector.shape != (expected,):
                if what == "embedding":
                    raise DimensionMismatch(
                        f"model {col.info.model!r} made a {vector.shape[-1]}-dimensional vector but collection "
                        f"{col.info.name!r} holds {expected}; create the collection without a dimension",
                    )
                raise DimensionMismatch(f"Vector dimension mismatch: got {vector.shape[-1]}, expected {expected}")
        matrix = np.stack(rows).astype(np.float32, copy=False)
        if col.info.metric != "cosine":
            return matrix
        norms = np.linalg.norm(matrix, axis=1)
        bad = ~(np.isfinite(norms) & (norms > 0))
        if bad.any():
            norm = float(norms[int(np.argmax(bad))])
            raise InvalidVector(f"{what} has length {norm}; a cosine collection needs a non-zero finite vector")
        return (matrix / norms[:, None]).astype(np.float32)

    async def get_document(self, ref: str, doc_id: str, with_vector: bool) -> StoredDocument:
        col = self.get(ref)
        doc = await asyncio.get_running_loop().run_in_executor(self.readers, col.get, doc_id, with_vector)
        if doc is None:
            raise DocumentNotFound(f"no document {doc_id!r} in collection {col.info.name!r}", param="doc_id")
        return doc

    async def delete_document(self, ref: str, doc_id: str) -> None:
        col = self.get(ref)
        if not await asyncio.shield(self._delete_document(col, doc_id)):
            raise DocumentNotFound(f"no document {doc_id!r} in collection {col.info.name!r}", param="doc_id")

    async def _delete_document(self, col: Collection, doc_id: str) -> bool:
        found = await self._write(col, col.delete, doc_id)
        if found:
            self.metrics.deleted.inc()
            self.metrics.documents.labels(col.info.name).set(len(col.index))
        return found

    async def list_documents(
        self, ref: str, after_key: int, limit: int, with_vector: bool
    ) -> tuple[list[StoredDocument], int]:
        col = self.get(ref)
        return await asyncio.get_running_loop().run_in_executor(self.readers, col.page, after_key, limit, with_vector)

    # -- search -------------------------------------------------------------------------------
    async def search(self, ref: str, q: SearchQuery) -> tuple[list[Hit], bool]:
        """The best k documents for a text or a vector; also whether the query was embedded."""
        started = time.perf_counter()
        col = self.get(ref)
        if q.mode == "hybrid" and q.text is not None:
            hits = await self._hybrid_one(col, q)
        else:
            (vector,) = await self._query_vectors(col, [q])
            hits = await self._search_one(col, vector, q, inline=True)
        self.metrics.search_latency.labels("text" if q.text is not None else "vector").observe(
            time.perf_counter() - started
        )
        return hits, q.text is not None and q.mode != "keyword"

    async def search_many(self, ref: str, queries: list[SearchQuery]) -> list[list[Hit]]:
        """Each query's best k documents, in order; every text among them is embedded in one call."""
        started = time.perf_counter()
        col = self.get(ref)
        vectors = await self._query_vectors(col, queries)
        # One reader call per query: on a machine with cores to spare they run side by side, and the
        # event loop is not held for the whole batch (a batch of one may answer on it, as a search does).
        inline = len(queries) == 1
        hits = await asyncio.gather(
            *(self._search_one(col, v, q, inline) for v, q in zip(vectors, queries, strict=True))
        )
        self.metrics.search_latency.labels("batch").observe(time.perf_counter() - started)
        return list(hits)

    async def _query_vectors(self, col: Collection, queries: list[SearchQuery]) -> list[np.ndarray]:
        """Each query's vector, ready for the index: given ones checked, texts embedded together."""
        given = [(i, q.vector) for i, q in enumerate(queries) if q.vector is not None]
        texts = [i for i, q in enumerate(queries) if q.text is not None and q.mode != "keyword"]  # BM25 needs none
        out: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(queries)
        if given:
            for (i, _), v in zip(given, self._prepare(col, [v for _, v in given]), strict=True):
                out[i] = v
        if texts:
            info = col.info
            embedded = await self._embed(col, tuple(queries[i].text or "" for i in texts), "query")
            self._check_model(col, info)
            for i, v in zip(texts, self._prepare(col, list(embedded), what="embedding"), strict=True):
                out[i] = v
        return out

    async def _search_one(self, col: Collection, vector: np.ndarray, q: SearchQuery, inline: bool) -> list[Hit]:
        self.metrics.searches.labels(q.mode).inc()
        if q.mode != "dense":
            return await asyncio.get_running_loop().run_in_executor(self.readers, self._text_search, col, vector, q)
        hits = col.search_now(vector, q.k, q.flt, q.include) if inline else None  # None: a reader thread's job
        if hits is not None:
            self.metrics.searches_on_loop.inc()
        else:
            hits = await asyncio.get_running_loop().run_in_executor(
                self.readers, col.search, vector, q.k, q.flt, self.cfg.filter_max_candidates, "vector" in q.include
            )
        return hits

    async def _hybrid_one(self, col: Collection, q: SearchQuery) -> list[Hit]:
        """A hybrid search whose keyword ranking runs on a reader thread while its text is embedded."""
        self.metrics.searches.labels(q.mode).inc()
        loop = asyncio.get_running_loop()
        text = TextQuery(q.text or "", q.keyword_syntax)
        keyword = loop.run_in_executor(self.readers, col.keyword_ranking, text, q.k, q.flt)
        try:
            (vector,) = await self._query_vectors(col, [q])
        except BaseException:
            keyword.add_done_callback(lambda f: f.cancelled() or f.exception())  # its outcome no longer matters
            raise
        ranking = await keyword
        return await loop.run_in_executor(self.readers, self._fuse, col, vector, ranking, q)

    def _text_search(self, col: Collection, vector: np.ndarray, q: SearchQuery) -> list[Hit]:
        """A keyword or hybrid search (a reader thread)."""
        text = TextQuery(q.text or "", q.keyword_syntax)
        if q.mode == "keyword":
            return col.keyword_search(text, q.k, q.flt, q.include)
        return self._fuse(col, vector, col.keyword_ranking(text, q.k, q.flt), q)

    def _fuse(self, col: Collection, vector: np.ndarray, ranking: list[tuple[int, float]], q: SearchQuery) -> list[Hit]:
        """A hybrid search's dense side fused with its keyword `ranking` (a reader thread)."""
        return col.fuse(
            vector,
            ranking,
            q.k,
            q.flt,
            alpha=q.alpha,
            rrf_k=self.cfg.rrf_k,
            max_candidates=self.cfg.filter_max_candidates,
            include=q.include,
        )
