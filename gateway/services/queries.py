"""The query service: dense, keyword and hybrid search, one query or a batch whose texts embed together.

A search with `rerank` retrieves `candidates` by its mode and then reranks them against its text, a
separate last step (`_reranked`): the retrieval does not know about it, and a batch's reranks run side
by side, so their pairs coalesce in the batcher.

A small dense search may answer on the event loop (`CollectionStore.search_inline`, where the engine
finds that cheaper than a thread hop); everything else is the engine's to run on its threads. A hybrid
search starts its keyword ranking while its text is being embedded.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import numpy as np

from gateway.errors import InvalidInput
from gateway.services.collection_inputs import SearchQuery
from gateway.services.collections import CollectionService
from gateway.services.embedding import EmbeddingService
from gateway.services.rerank import RerankRequest, RerankService
from gateway.services.vectors import again_after_swap, check_model, embed, prepare
from gateway.storage.engine import CollectionStore, Hit, TextQuery


class SearchService:
    """Searches within the collection service's collections."""

    def __init__(self, collections: CollectionService, embedding: EmbeddingService, rerank: RerankService) -> None:
        self.collections = collections
        self.embedding = embedding
        self.rerank = rerank
        self.metrics = collections.metrics

    async def search(self, ref: str, q: SearchQuery) -> tuple[list[Hit], bool]:
        """The best k documents for a text or a vector; also whether the query was embedded."""
        started = time.perf_counter()
        return await again_after_swap(lambda: self._search(ref, q, started))

    async def _search(self, ref: str, q: SearchQuery, started: float) -> tuple[list[Hit], bool]:
        col = self.collections.get(ref)
        retrieval = self._retrieval(q)
        if q.mode == "hybrid" and q.text is not None:
            hits = await self._hybrid_one(col, retrieval)
        else:
            (vector,) = await self._query_vectors(col, [q])
            hits = await self._search_one(col, vector, retrieval, inline=True)
        hits = await self._reranked(hits, q)
        self.metrics.search_latency.labels("text" if q.text is not None else "vector").observe(
            time.perf_counter() - started
        )
        return hits, q.text is not None and q.mode != "keyword"

    async def search_many(self, ref: str, queries: list[SearchQuery]) -> list[list[Hit]]:
        """Each query's best k documents, in order; every text among them is embedded in one call."""
        started = time.perf_counter()
        return await again_after_swap(lambda: self._search_many(ref, queries, started))

    async def _search_many(self, ref: str, queries: list[SearchQuery], started: float) -> list[list[Hit]]:
        col = self.collections.get(ref)
        retrievals = [self._retrieval(q) for q in queries]
        vectors = await self._query_vectors(col, queries)
        # One engine call per query: on a machine with cores to spare they run side by side, and the
        # event loop is not held for the whole batch (a batch of one may answer on it, as a search does).
        inline = len(queries) == 1
        hits = await asyncio.gather(
            *(self._search_one(col, v, q, inline) for v, q in zip(vectors, retrievals, strict=True))
        )
        reranked = await asyncio.gather(*(self._reranked(h, q) for h, q in zip(hits, queries, strict=True)))
        self.metrics.search_latency.labels("batch").observe(time.perf_counter() - started)
        return list(reranked)

    # ---- the rerank step

    def _retrieval(self, q: SearchQuery) -> SearchQuery:
        """What the retrieval runs: the query itself, or with rerank its candidates, texts included."""
        if q.rerank is None:
            return q
        limit = self.rerank.cfg.rerank.max_documents
        if q.rerank.candidates > limit:
            raise InvalidInput(
                f"rerank.candidates is {q.rerank.candidates}, over the limit of {limit} (rerank.max_documents)",
                param="rerank",
            )
        self.rerank.resolve_model(q.rerank.model)  # a wrong model fails before any retrieval work
        return replace(q, k=q.rerank.candidates, include=q.include | {"text"})

    async def _reranked(self, hits: list[Hit], q: SearchQuery) -> list[Hit]:
        """The best k of the candidates by the reranker's score; each keeps its retrieval score and ranks."""
        if q.rerank is None or not hits:
            return hits
        assert q.text is not None  # checked where the request came in
        # A document stored with a vector only has no text to read: it is scored as an empty one.
        documents = tuple(h.doc.text or "" for h in hits)
        req = RerankRequest(q.text, documents, q.rerank.model, field="rerank")
        out = await self.rerank.rerank(req, transport="search")
        best = out.ranking()[: q.k]
        return [
            Hit(
                hits[i].doc,
                float(out.scores[i]),
                {**(hits[i].ranks or {q.mode: i + 1}), "rerank": rank},
                retrieval_score=hits[i].score,
            )
            for rank, i in enumerate(best, start=1)
        ]

    async def _query_vectors(self, col: CollectionStore, queries: list[SearchQuery]) -> list[np.ndarray]:
        """Each query's vector, ready for the index: given ones checked, texts embedded together."""
        given = [(i, q.vector) for i, q in enumerate(queries) if q.vector is not None]
        texts = [i for i, q in enumerate(queries) if q.text is not None and q.mode != "keyword"]  # BM25 needs none
        out: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(queries)
        if given:
            for (i, _), v in zip(given, prepare(col.info, [v for _, v in given]), strict=True):
                out[i] = v
        if texts:
            info = col.info
            embedded = await embed(self.embedding, info, tuple(queries[i].text or "" for i in texts), "query")
            check_model(col, info)
            for i, v in zip(texts, prepare(info, list(embedded), what="embedding"), strict=True):
                out[i] = v
        return out

    async def _search_one(self, col: CollectionStore, vector: np.ndarray, q: SearchQuery, inline: bool) -> list[Hit]:
        self.metrics.searches.labels(q.mode).inc()
        text = TextQuery(q.text or "", q.keyword_syntax)
        if q.mode == "keyword":
            return await col.keyword_search(text, q.k, q.flt, q.include)
        if q.mode == "hybrid":
            return await col.hybrid_search(vector, text, q.k, q.flt, q.alpha, q.include)
        hits = col.search_inline(vector, q.k, q.flt, q.include) if inline else None  # None: the engine's threads
        if hits is not None:
            self.metrics.searches_on_loop.inc()
            return hits
        return await col.search(vector, q.k, q.flt, q.include)

    async def _hybrid_one(self, col: CollectionStore, q: SearchQuery) -> list[Hit]:
        """A hybrid search whose keyword ranking runs while its text is embedded."""
        self.metrics.searches.labels(q.mode).inc()
        text = TextQuery(q.text or "", q.keyword_syntax)
        keyword = asyncio.ensure_future(col.keyword_ranking(text, q.k, q.flt))
        try:
            (vector,) = await self._query_vectors(col, [q])
        except BaseException:
            keyword.add_done_callback(lambda f: f.cancelled() or f.exception())  # its outcome no longer matters
            raise
        ranking = await keyword
        return await col.fuse(vector, ranking, q.k, q.flt, q.alpha, q.include)
