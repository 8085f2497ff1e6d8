"""The document service: insert (texts embedded through the gateway's batcher), get, list and delete.

Inserts validate against the collection, embed every text of a request in one call, then hand the
batch to the storage engine, which acknowledges it only once it is committed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import numpy as np
import orjson

from gateway.services.collection_inputs import DocumentInput
from gateway.services.collections import CollectionService
from gateway.services.embedding import EmbeddingService
from gateway.services.vectors import again_after_swap, check_model, embed, prepare
from gateway.storage.engine import CollectionInfo, CollectionStore, NewDocument, StoredDocument
from gateway.storage.errors import DocumentNotFound


class DocumentService:
    """Documents within the collection service's collections."""

    def __init__(self, collections: CollectionService, embedding: EmbeddingService) -> None:
        self.collections = collections
        self.embedding = embedding
        self.metrics = collections.metrics

    async def insert(self, ref: str, docs: list[DocumentInput]) -> list[dict[str, Any]]:
        """Store documents all-or-nothing; returns `{"id", "vector_generated"}` per document."""
        started = time.perf_counter()
        return await again_after_swap(lambda: self._insert(ref, docs, started))

    async def _insert(self, ref: str, docs: list[DocumentInput], started: float) -> list[dict[str, Any]]:
        col = self.collections.get(ref)
        info = col.info  # what the vectors are made for: a re-embedding's swap meanwhile refuses them
        to_embed = [i for i, d in enumerate(docs) if d.vector is None]
        given = [i for i, d in enumerate(docs) if d.vector is not None]
        given_rows = [d.vector for d in docs if d.vector is not None]
        vectors = np.empty((len(docs), info.dimension), dtype=np.float32)
        # Checked (and normalised) as one matrix: per-row numpy calls cost ~10 ms of event loop
        # per 1,000 documents; given vectors are refused before any text is embedded.
        if given:
            vectors[given] = prepare(info, given_rows)
        if to_embed:
            embedded = await embed(self.embedding, info, tuple(docs[i].text or "" for i in to_embed), "document")
            check_model(col, info)
            vectors[to_embed] = prepare(info, list(embedded), what="embedding")
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
        # Shielded: once handed to the engine the documents are stored even if the client leaves,
        # so the metrics must follow them.
        await asyncio.shield(self._store(col, ready, len(to_embed), started, info))
        return [{"id": d.doc_id, "vector_generated": d.generated} for d in ready]

    async def _store(
        self, col: CollectionStore, ready: list[NewDocument], embedded: int, started: float, info: CollectionInfo
    ) -> None:
        await col.upsert(ready, info)
        self.metrics.inserted.labels("embedded").inc(embedded)
        self.metrics.inserted.labels("vector").inc(len(ready) - embedded)
        await self.collections.count_documents(col)
        self.metrics.insert_latency.observe(time.perf_counter() - started)

    async def get(self, ref: str, doc_id: str, with_vector: bool) -> StoredDocument:
        col = self.collections.get(ref)
        doc = await col.get(doc_id, with_vector)
        if doc is None:
            raise DocumentNotFound(f"no document {doc_id!r} in collection {col.info.name!r}", param="doc_id")
        return doc

    async def delete(self, ref: str, doc_id: str) -> None:
        col = self.collections.get(ref)
        if not await asyncio.shield(self._delete(col, doc_id)):
            raise DocumentNotFound(f"no document {doc_id!r} in collection {col.info.name!r}", param="doc_id")

    async def _delete(self, col: CollectionStore, doc_id: str) -> bool:
        found = await col.delete(doc_id)
        if found:
            self.metrics.deleted.inc()
            await self.collections.count_documents(col)
        return found

    async def list(self, ref: str, after_key: int, limit: int, with_vector: bool) -> tuple[list[StoredDocument], int]:
        """One page of documents in insertion order, and the total count."""
        return await self.collections.get(ref).page(after_key, limit, with_vector)
