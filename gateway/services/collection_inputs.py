"""Validated requests the collection service takes, whatever front door parsed them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.storage.filters import Where

INCLUDE_FIELDS = ("text", "metadata", "vector")


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    dimension: int | None = None
    metric: str = "cosine"
    model: str | None = None
    pooling: str | None = None
    normalize: bool | None = None  # None: embedding.normalize from the config
    connectivity: int | None = None
    expansion_add: int | None = None
    expansion_search: int | None = None


@dataclass(frozen=True)
class DocumentInput:
    """One document to store: text, a vector, or both (a given vector is never replaced by an embedding)."""

    doc_id: str | None
    text: str | None
    vector: np.ndarray | None  # float32, finite; its length is checked against the collection
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class RerankStep:
    """A search's rerank option: fetch `candidates` by the search's mode, rerank them against its text."""

    model: str | None  # None: rerank.default_model
    candidates: int


@dataclass(frozen=True)
class SearchQuery:
    text: str | None
    vector: np.ndarray | None
    k: int
    flt: Where | None  # the validated filter tree each engine renders; None matches everything
    include: frozenset[str]
    mode: str = "dense"  # "dense" (the vector index), "keyword" (BM25 over the text), "hybrid" (both, fused)
    alpha: float = 0.5  # hybrid: the dense list's weight in the fusion; the keyword list's is 1 - alpha
    keyword_syntax: str = "plain"  # "plain": the query's words; "fts5": FTS5's query syntax
    rerank: RerankStep | None = None  # retrieve `candidates`, rerank them, keep the best k
