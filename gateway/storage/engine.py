"""The storage seam: what the services ask of a storage engine, and the values that cross it.

Two engines stand behind it: the embedded one (a folder per collection, SQLite + USearch, in this
process: `gateway.storage.embedded`) and PostgreSQL with pgvector (`gateway.storage.postgres`).
Services and routes import this module, never an engine's classes; `gateway.storage.engines.open_engine`
picks one from `storage.backend`.

Every method that can wait on a disk or a database is async: the engine decides which thread runs it
(the embedded engine's per-collection writer thread, its reader pool, the PostgreSQL engine's pool).
`search_inline` is the one synchronous search: an engine that can answer a small search faster on the
event loop than by a thread hop does so, and returns None otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gateway.storage.errors import EngineUnsupported
from gateway.storage.filters import Where
from gateway.storage.index import IndexParams

__all__ = [
    "Catalogue",
    "CollectionInfo",
    "CollectionStore",
    "EngineUnsupported",
    "Hit",
    "JobRecord",
    "NewDocument",
    "Pending",
    "Reembedding",
    "StoredDocument",
    "TextQuery",
    "Where",
]


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection is; fixed at creation (a re-embedding's swap makes a new one)."""

    id: str
    name: str
    dimension: int
    metric: str
    model: str
    pooling: str | None
    normalize: bool
    index: IndexParams
    created_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CollectionInfo:
        data = json.loads(text)
        return cls(**{**data, "index": IndexParams(**data["index"])})


@dataclass(frozen=True)
class NewDocument:
    """A validated document ready to store: its vector is final (normalised if the metric wants it)."""

    doc_id: str
    text: str | None
    metadata: str | None  # JSON text of an object
    vector: np.ndarray  # (dimension,) float32
    generated: bool


@dataclass(frozen=True)
class StoredDocument:
    key: int  # insertion order: a replaced document gets a new, higher key
    doc_id: str
    text: str | None
    metadata: str | None
    vector: bytes | None  # float32 bytes, only when asked for
    generated: bool


@dataclass(frozen=True)
class Hit:
    doc: StoredDocument
    score: float
    ranks: dict[str, int] | None = None  # the lists it came from ("dense", "keyword") and its rank in each
    # Set by a search's rerank step (gateway/services/queries.py), whose `score` is then the reranker's:
    # the score the retrieval gave. Engines never set it.
    retrieval_score: float | None = None


@dataclass(frozen=True)
class TextQuery:
    """The text half of a keyword or hybrid search."""

    text: str
    syntax: str = "plain"  # "plain": words; "fts5": the engine's query syntax


# A re-embedding job's states
RUNNING, DONE, CANCELLED, FAILED = "running", "done", "cancelled", "failed"


@dataclass(frozen=True)
class JobRecord:
    """One re-embedding job as stored."""

    id: str
    model: str
    pooling: str | None
    dimension: int
    drop_vector_only: bool
    state: str
    error: str | None
    last_key: int  # every document with a key up to this one has its new vector stored
    done: int
    total: int  # documents when the job started
    vector_only: int  # documents without text when the job started
    dropped: int  # documents without text the swap removed
    resumed_from: int  # `done` when a gateway last took the job up after a restart (0: never restarted)
    created_at: float
    finished_at: float | None


@dataclass(frozen=True)
class Pending:
    """Documents the job has yet to embed: their keys, and their texts (None: stored with a vector only)."""

    keys: list[int]
    texts: list[str | None]


class CollectionStore(Protocol):
    """One collection's documents and search, whichever engine holds them."""

    @property
    def info(self) -> CollectionInfo: ...

    @property
    def closed(self) -> bool:
        """True once the collection was deleted (or the engine closed): its calls raise `CollectionNotFound`."""
        ...

    @property
    def engine(self) -> str: ...

    # writes: acknowledged only once committed; a batch is all-or-nothing
    async def upsert(self, docs: list[NewDocument], embedded_for: CollectionInfo | None = None) -> None:
        """Insert or replace; `ModelChanged` if `embedded_for` is no longer the collection's description."""
        ...

    async def delete(self, doc_id: str) -> bool: ...

    # reads
    async def count(self) -> int: ...

    def count_now(self) -> int | None:
        """The document count without waiting, if the engine knows it in memory (else None)."""
        ...

    async def get(self, doc_id: str, with_vector: bool) -> StoredDocument | None: ...

    async def page(self, after_key: int, limit: int, with_vector: bool) -> tuple[list[StoredDocument], int]:
        """Up to `limit` documents after `after_key` in insertion order, and the total count."""
        ...

    # search
    def search_inline(
        self, vector: np.ndarray, k: int, where: Where | None, include: frozenset[str]
    ) -> list[Hit] | None:
        """A dense search answered on the calling thread (the event loop) when that is cheap, else None."""
        ...

    async def search(self, vector: np.ndarray, k: int, where: Where | None, include: frozenset[str]) -> list[Hit]:
        """The k nearest documents that pass the filter, best first."""
        ...

    async def keyword_search(
        self, text: TextQuery, k: int, where: Where | None, include: frozenset[str]
    ) -> list[Hit]: ...

    async def keyword_ranking(self, text: TextQuery, k: int, where: Where | None) -> list[tuple[int, float]]:
        """The (key, score) list a hybrid search of k fuses from the keyword side, best first."""
        ...

    async def fuse(
        self,
        vector: np.ndarray,
        ranking: list[tuple[int, float]],
        k: int,
        where: Where | None,
        alpha: float,
        include: frozenset[str],
    ) -> list[Hit]:
        """The dense ranking fused with a keyword `ranking` by reciprocal rank fusion."""
        ...

    async def hybrid_search(
        self, vector: np.ndarray, text: TextQuery, k: int, where: Where | None, alpha: float, include: frozenset[str]
    ) -> list[Hit]: ...

    # re-embedding (PostgreSQL's jobs are leased: several gateways share them) and collection snapshots, which
    # both engines write in one format (`gateway.storage.backup`, `gateway.storage.snapshot_db`)
    def reembedding(self) -> Reembedding:
        """The collection's re-embedding jobs (`EngineUnsupported` where the engine has none)."""
        ...

    async def export_snapshot(self, backups: Any) -> Any:
        """Write a collection snapshot with `backups` (`gateway.storage.backup.Backups`); its `BackupInfo`."""
        ...

    def waiting_for_space(self) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
        """Start-up writes the disk had no room for when the collection opened, named, in the order they can
        run (the caller retries them once space returns); none for an engine without local files."""
        ...


class Catalogue(Protocol):
    """Which collections exist: create, list, get, delete and restore them."""

    engine: str
    data_root: Path  # where this gateway keeps local files (snapshots), whatever the engine

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def has_room(self) -> bool:
        """Whether the local disk has room for a write now (blocking: a probe write; run it on a thread)."""
        ...

    def get(self, ref: str) -> CollectionStore:
        """A collection by id or by name; `CollectionNotFound` otherwise."""
        ...

    def find(self, ref: str) -> CollectionStore | None: ...

    def opened(self) -> Sequence[CollectionStore]:
        """Every collection, oldest first."""
        ...

    def check_name_free(self, name: str) -> None:
        """`CollectionExists` if a collection has this name."""
        ...

    async def create(self, info: CollectionInfo) -> CollectionStore:
        """Make a collection atomically; `CollectionExists` if the name is taken."""
        ...

    async def delete(self, ref: str) -> CollectionInfo: ...

    def check_restorable(self) -> None:
        """`EngineUnsupported` if this engine cannot restore snapshots (asked before a long upload)."""
        ...

    async def restore(self, name: str, unpack: Callable[[Path], str]) -> CollectionStore:
        """Make collection `name` from the files `unpack` writes into an empty folder (it returns their
        description as JSON). Whatever `unpack` raises, nothing is created."""
        ...


class Reembedding(Protocol):
    """A collection's re-embedding jobs as the engine stores them (`gateway.storage.reembed` for the embedded one).

    `staged` is the engine's own new index, opaque to the service. Where several gateways share the
    engine (`leased`), a job is run by the one gateway holding its lease: it renews it while running, and
    another gateway takes over a job whose lease lapsed (`claimable`, then `mark_resumed` claims it);
    writes of a gateway that lost the lease raise `LeaseLost`."""

    leased: bool

    async def ensure_schema(self) -> None: ...

    async def jobs(self) -> list[JobRecord]: ...

    async def job(self, job_id: str) -> JobRecord: ...

    async def remaining(self, after_key: int) -> int: ...

    async def start(self, job_id: str, model: str, pooling: str | None, dimension: int, drop: bool) -> JobRecord: ...

    async def mark_resumed(self, record: JobRecord) -> JobRecord:
        """Record that this gateway takes the job up (on a leased engine: claim it, or `LeaseLost`)."""
        ...

    async def claimable(self) -> list[JobRecord]:
        """Running jobs whose holder is gone (a leased engine's lapsed leases); none elsewhere."""
        ...

    async def renew(self, job_id: str) -> None:
        """Extend this gateway's lease on a job it runs; `LeaseLost` if it no longer holds it."""
        ...

    async def release(self, job_id: str) -> None:
        """Give up the lease at a clean stop, so another gateway takes the job without waiting."""
        ...

    async def pending(self, job_id: str, after_key: int, limit: int) -> Pending:
        """Documents above `after_key` the job has yet to embed, in key order."""
        ...

    def new_staged(self, dimension: int) -> Any: ...

    async def load_staged(self, record: JobRecord) -> Any: ...

    async def store_batch(
        self, job_id: str, staged: Any, keys: list[int], vectors: np.ndarray, last_key: int
    ) -> None: ...

    async def finish(self, job_id: str, state: str, error: str | None = None) -> None: ...

    async def swap(self, record: JobRecord, staged: Any, pooling: str | None) -> bool: ...
