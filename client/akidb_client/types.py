"""Typed results: what the server answers, with vectors as numpy arrays."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]


def as_vector(value: Any) -> Vector:
    """A JSON array (or any sequence) as a float32 numpy vector."""
    return np.asarray(value, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Doc:
    """A document to store: text (embedded by the server) and/or a vector, an optional id and metadata.

    `ref` is yours: it comes back in a `Failure` (the CLI puts the file's line number there).
    """

    text: str | None = None
    id: str | None = None
    vector: Any = None
    metadata: dict[str, Any] | None = None
    ref: Any = None

    def to_json(self) -> dict[str, Any]:
        """The wire form of this document (only the fields that are set)."""
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        if self.text is not None:
            out["text"] = self.text
        if self.vector is not None:
            out["vector"] = self.vector.tolist() if isinstance(self.vector, np.ndarray) else list(self.vector)
        if self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass(frozen=True, slots=True)
class Embeddings:
    """The answer of `embed`: one row per input text."""

    vectors: npt.NDArray[np.float32]
    model: str
    dimension: int
    total_tokens: int
    duration_ms: float

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Embeddings:
        usage = body.get("usage") or {}
        dim = int(body["dimension"])
        vectors = np.asarray(body["embeddings"], dtype=np.float32).reshape(-1, dim)
        return cls(vectors, body["model"], dim, int(usage.get("total_tokens", 0)), float(usage.get("duration_ms", 0)))


@dataclass(frozen=True, slots=True)
class Collection:
    """A collection's description."""

    id: str
    name: str
    dimension: int
    metric: str
    model: str | None
    pooling: str | None
    normalize: bool | None
    index: dict[str, Any]
    document_count: int
    created_at: float

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Collection:
        return cls(
            id=body["id"],
            name=body["name"],
            dimension=int(body["dimension"]),
            metric=body["metric"],
            model=body.get("model"),
            pooling=body.get("pooling"),
            normalize=body.get("normalize"),
            index=dict(body.get("index") or {}),
            document_count=int(body.get("document_count", 0)),
            created_at=float(body.get("created_at", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A stored collection snapshot: one file a new collection can be restored from."""

    name: str
    collection: str
    size: int
    created_at: float
    documents: int

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Snapshot:
        return cls(
            name=body["name"],
            collection=body["collection"],
            size=int(body["size"]),
            created_at=float(body["created_at"]),
            documents=int(body["documents"]),
        )


@dataclass(frozen=True, slots=True)
class Document:
    """A stored document; `vector` is None unless asked for."""

    id: str
    text: str | None = None
    metadata: dict[str, Any] | None = None
    vector: Vector | None = None
    vector_generated: bool | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Document:
        vec = body.get("vector")
        return cls(
            id=body["id"],
            text=body.get("text"),
            metadata=body.get("metadata"),
            vector=None if vec is None else as_vector(vec),
            vector_generated=body.get("vector_generated"),
        )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a collection's documents; `next` is the cursor for the following page (None: last)."""

    documents: list[Document]
    total: int
    next: str | None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Page:
        return cls([Document.from_json(d) for d in body["documents"]], int(body["total"]), body.get("next"))


@dataclass(frozen=True, slots=True)
class Inserted:
    """One stored document's id, and whether the server embedded its text."""

    id: str
    vector_generated: bool


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result.

    With `rerank`, `score` is the reranker's and `retrieval_score` the search's own (sent with
    `include=["ranks"]`, as are `ranks`: the rankings the hit came from and its place in each).
    """

    id: str
    score: float
    text: str | None = None
    metadata: dict[str, Any] | None = None
    vector: Vector | None = None
    retrieval_score: float | None = None
    ranks: dict[str, int] | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Hit:
        vec = body.get("vector")
        retrieval = body.get("retrieval_score")
        return cls(
            body["id"],
            float(body["score"]),
            body.get("text"),
            body.get("metadata"),
            None if vec is None else as_vector(vec),
            None if retrieval is None else float(retrieval),
            body.get("ranks"),
        )


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Search results (best first), with the server's time and whether the query was embedded."""

    hits: list[Hit]
    query_embedded: bool
    took_ms: float

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, i: int) -> Hit:
        return self.hits[i]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SearchResult:
        hits = [Hit.from_json(r) for r in body["results"]]
        return cls(hits, bool(body.get("query_embedded", False)), float(body.get("took_ms", 0.0)))


@dataclass(frozen=True, slots=True)
class BatchSearchResult:
    """The answer of a batch search: one list of hits per query, in the order the queries were given."""

    results: list[list[Hit]]
    took_ms: float

    def __iter__(self) -> Iterator[list[Hit]]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> list[Hit]:
        return self.results[i]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> BatchSearchResult:
        results = [[Hit.from_json(r) for r in hits] for hits in body["results"]]
        return cls(results, float(body.get("took_ms", 0.0)))


@dataclass(frozen=True, slots=True)
class Ranked:
    """One reranked document: its position in the documents sent, the reranker's score, and its text if asked."""

    index: int
    relevance_score: float
    document: str | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Ranked:
        doc = body.get("document")
        # Cohere and Jina send the document as {"text": ...}; a plain string is read as well.
        text = doc.get("text") if isinstance(doc, dict) else doc
        return cls(int(body["index"]), float(body["relevance_score"]), text)


@dataclass(frozen=True, slots=True)
class Reranking:
    """The answer of `rerank`: the documents most relevant to the query first, at most `top_n` of them."""

    results: list[Ranked]
    model: str
    total_tokens: int

    def __iter__(self) -> Iterator[Ranked]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> Ranked:
        return self.results[i]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Reranking:
        usage = body.get("usage") or {}
        results = [Ranked.from_json(r) for r in body["results"]]
        return cls(results, str(body.get("model", "")), int(usage.get("total_tokens", 0)))


@dataclass(frozen=True, slots=True)
class Model:
    """A model the server's workers serve."""

    name: str
    dimension: int
    max_tokens: int
    pooling: str
    aliases: list[str]
    backend: str
    device: str
    precision: str
    workers: int
    default: bool
    kind: str = "embed"  # "embed" (texts to vectors) or "rerank" (scores query-document pairs)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Model:
        return cls(
            name=body["name"],
            dimension=int(body["dimension"]),
            max_tokens=int(body.get("max_tokens", 0)),
            pooling=body.get("pooling", ""),
            aliases=list(body.get("aliases") or []),
            backend=body.get("backend", ""),
            device=body.get("device", ""),
            precision=body.get("precision", ""),
            workers=int(body.get("workers", 0)),
            default=bool(body.get("default", False)),
            kind=str(body.get("kind", "embed")),
        )


@dataclass(frozen=True, slots=True)
class Health:
    """GET /health: the gateway answers, and how many workers it sees."""

    status: str
    workers: int


@dataclass(frozen=True, slots=True)
class Failure:
    """A document that was not stored: its position in the stream (or your `ref`), id and the reason."""

    ref: Any
    id: str | None
    code: str
    message: str


@dataclass(slots=True)
class ImportReport:
    """What `add_documents` did: stored, skipped (id already there) and failed documents."""

    inserted: int = 0
    skipped: int = 0
    failed: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed
