"""A collection's searches, on the reader pool (or the event loop when cheap: `search_now`): dense, filtered,
keyword (BM25) and hybrid (reciprocal rank fusion), each under the index's shared lock, so a re-embedding's
swap or a close waits for the searches running on the old index."""

from __future__ import annotations

import numpy as np

from gateway.storage.collection_base import CollectionBase
from gateway.storage.datadir import data_dir_of
from gateway.storage.engine import Hit, TextQuery
from gateway.storage.errors import FulltextPending, ModelChanged
from gateway.storage.filters import Filter
from gateway.storage.fusion import KEYWORD, rrf
from gateway.storage.index import VectorIndex
from gateway.storage.matches import Ranked, first_round, one_round, search_within

# Hits up to which an unfiltered search runs on the caller's thread (`search_now`).
FAST_K = 100
TEXT_AND_METADATA = frozenset(("text", "metadata"))
WITH_VECTOR = frozenset(("text", "metadata", "vector"))
# Candidates up to which a filtered search whose matches are known runs on the caller's thread (~0.5 ms).
FAST_CANDIDATES = 256
# A hybrid search fuses each list's best DEPTH_PER_K × k. Deeper lists let documents that are mediocre
# in both outrank the best of one: on bench/hybrid.py's task (5,000 packages, 500 queries), lists of
# 100 gained 35 queries over dense at recall@10 and lost 23; lists of 2k gained 28 and lost 11.
DEPTH_PER_K = 2


class CollectionSearch(CollectionBase):
    """Dense, keyword and hybrid search over one collection's index and database."""

    def search(
        self, query: np.ndarray, k: int, flt: Filter | None, max_candidates: int, with_vector: bool
    ) -> list[Hit]:
        """The k best documents that pass the filter, best first (text and metadata, the vector if asked)."""
        include = WITH_VECTOR if with_vector else TEXT_AND_METADATA
        index = self.index
        with index.lock.shared():
            self._check_open()
            self._check_current(index, query)
            if flt is None:
                keys, scores = self.index.search(query, k)
            else:
                keys, scores = self._filtered(query, k, flt, max_candidates)
            return self._hits(keys, scores, include)

    def search_now(self, query: np.ndarray, k: int, flt: Filter | None, include: frozenset[str]) -> list[Hit] | None:
        """`search` on the calling thread, for the event loop: None when that could wait or take long.

        An unfiltered search of up to FAST_K hits takes ~0.1-0.4 ms, less than handing it to a reader
        thread and back; so does a filtered one whose filter's matches are remembered as of the index's
        state, if it scores them exactly or needs at most FAST_CANDIDATES from the index. It runs here
        only if the index is free right now (an insert holds it for up to one ADD_CHUNK) and an open
        database connection is idle. Otherwise (a filter to look up, a large k, a busy index, no idle
        connection: a closed collection has none) it returns None, and the caller runs `search` on a
        reader thread. Documents come with only the fields in `include`.
        """
        if k > FAST_K or not self.store.reader_idle():
            return None
        index = self.index
        with index.lock.try_shared() as held:
            if not held:
                return None
            self._check_open()
            self._check_current(index, query)
            if flt is None:
                keys, scores = index.search(query, k)
            else:
                matches = self.matches.fresh(flt, self.marks)
                if matches is None:
                    return None
                if matches.vectors is not None:
                    keys, scores = index.exact(query, matches.keys, matches.vectors, k)
                else:
                    count = first_round(index, matches, k)
                    found = one_round(index, query, k, matches, count) if count <= FAST_CANDIDATES else None
                    if found is None:  # more rounds to come: a reader thread starts over
                        return None
                    keys, scores = found
            return self._hits(keys, scores, include)

    def _check_current(self, index: VectorIndex, query: np.ndarray) -> None:
        """`ModelChanged` if a re-embedding swapped the index since the query was embedded for it.

        The swap holds the old index's lock exclusively, so once a search holds it the index it sees stays.
        """
        if index is not self.index or query.shape[-1] != index.dimension:
            raise ModelChanged(f"collection {self.info.name!r} switched to model {self.info.model!r}; retry")

    def keyword_search(self, query: TextQuery, k: int, flt: Filter | None, include: frozenset[str]) -> list[Hit]:
        """The k documents BM25 ranks best for the text that pass the filter, best first (score: BM25)."""
        with self.index.lock.shared():
            self._check_open()
            self._check_fulltext()
            found = self.store.keyword(query.text, query.syntax, k, flt, len(self.index))
            docs = self.store.fetch([key for key, _ in found], include)
            return [
                Hit(docs[key], score, {KEYWORD: rank})
                for rank, (key, score) in enumerate(found, start=1)
                if key in docs
            ]

    def keyword_ranking(self, query: TextQuery, k: int, flt: Filter | None) -> list[tuple[int, float]]:
        """The keys (and BM25 scores) a hybrid search of k fuses from the keyword side, best first.

        Apart from `fuse` so that it can run while the query's text is still being embedded."""
        with self.index.lock.shared():
            self._check_open()
            self._check_fulltext()
            return self.store.keyword(query.text, query.syntax, DEPTH_PER_K * k, flt, len(self.index))

    def _check_fulltext(self) -> None:
        if not self.has_fulltext:
            raise FulltextPending(
                f"collection {self.info.name!r} has no full-text index yet: building it needs disk space under "
                f"storage.data_dir {data_dir_of(self.folder)}, and it is built as soon as space is freed; "
                "dense searches (a query without mode, or a vector) work meanwhile"
            )

    def fuse(
        self,
        vector: np.ndarray,
        keyword: list[tuple[int, float]],
        k: int,
        flt: Filter | None,
        *,
        alpha: float,
        rrf_k: int,
        max_candidates: int,
        include: frozenset[str],
    ) -> list[Hit]:
        """The dense ranking (filtered) fused with a keyword ranking by reciprocal rank fusion (score: RRF's).

        A document the keyword side found and a write removed since is dropped by the fetch."""
        depth = DEPTH_PER_K * k
        index = self.index  # the one whose lock is held, searched below
        with index.lock.shared():
            self._check_open()
            self._check_current(index, vector)
            if flt is None:
                dense, _ = index.search(vector, depth)
            else:
                dense, _ = self._filtered(vector, depth, flt, max_candidates)
            fused = rrf(dense.tolist(), [key for key, _ in keyword], rrf_k, alpha, k)
            docs = self.store.fetch([f.key for f in fused], include)
            return [Hit(docs[f.key], f.score, f.ranks) for f in fused if f.key in docs]

    def hybrid_search(
        self,
        vector: np.ndarray,
        query: TextQuery,
        k: int,
        flt: Filter | None,
        *,
        alpha: float,
        rrf_k: int,
        max_candidates: int,
        include: frozenset[str],
    ) -> list[Hit]:
        """Dense and keyword rankings (both filtered) fused by reciprocal rank fusion (score: the RRF score)."""
        keyword = self.keyword_ranking(query, k, flt)
        return self.fuse(
            vector, keyword, k, flt, alpha=alpha, rrf_k=rrf_k, max_candidates=max_candidates, include=include
        )

    def _hits(self, keys: np.ndarray, scores: np.ndarray, include: frozenset[str]) -> list[Hit]:
        """The documents behind keys, as hits (caller holds the index lock, which holds off close)."""
        key_list, score_list = keys.tolist(), scores.tolist()
        docs = self.store.fetch(key_list, include)
        return [Hit(docs[key], score) for key, score in zip(key_list, score_list, strict=True) if key in docs]

    def _filtered(self, query: np.ndarray, k: int, flt: Filter, max_candidates: int) -> Ranked:
        """The k best that pass the filter (`matches.search_within`; caller holds the index lock)."""
        matches = self.matches.get(flt, self.marks)
        return search_within(self.index, self.store, query, k, matches, max_candidates)
