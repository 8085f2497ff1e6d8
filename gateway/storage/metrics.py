"""Storage metrics, created against the gateway's one Prometheus registry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.storage.datadir import free_bytes

# Inserts include embedding a batch and an fsync, so they reach further than searches.
INSERT_TAIL = (30, 60)


class StorageMetrics:
    """Collections, documents and search. Each is updated on the line where its state changes.

    `latency_buckets` are the gateway's (given, so dashboards line up and storage imports nothing above it).
    """

    def __init__(self, registry: CollectorRegistry, latency_buckets: Sequence[float]) -> None:
        insert_buckets = (*latency_buckets, *INSERT_TAIL)
        self.insert_latency = Histogram(
            "akidb_insert_latency_seconds",
            "Document insert requests, receipt to durable acknowledgement (embedding included)",
            buckets=insert_buckets,
            registry=registry,
        )
        self.search_latency = Histogram(
            "akidb_search_latency_seconds",
            "Search requests, receipt to response (query embedding included)",
            ["query"],
            buckets=latency_buckets,
            registry=registry,
        )
        self.searches = Counter(
            "akidb_searches_total",
            "Searches (each member of a batch counts) by mode: dense, keyword or hybrid",
            ["mode"],
            registry=registry,
        )
        self.searches_on_loop = Counter(
            "akidb_searches_on_loop_total",
            "Searches answered on the event loop, without a hop to a reader thread (alone in flight, index free)",
            registry=registry,
        )
        self.documents = Gauge(
            "akidb_collection_documents", "Documents stored per collection", ["collection"], registry=registry
        )
        self.inserted = Counter(
            "akidb_documents_inserted_total",
            "Documents written, by where the vector came from: embedded (auto) or vector (given by the caller)",
            ["source"],
            registry=registry,
        )
        self.deleted = Counter("akidb_documents_deleted_total", "Documents deleted", registry=registry)
        self.snapshots = Histogram(
            "akidb_index_snapshot_seconds", "Time to save one index snapshot", buckets=insert_buckets, registry=registry
        )
        self.snapshot_failures = Counter(
            "akidb_index_snapshot_failures_total",
            "Index snapshots that could not be saved (retried with backoff; the database keeps every write)",
            registry=registry,
        )
        self.writable = Gauge(
            "akidb_storage_writable",
            "1 while writes are stored; 0 from a write refused for lack of disk space until a write succeeds",
            registry=registry,
        )
        self.writable.set(1)
        self.is_writable = True  # what the gauge says, for /ready
        self.deferred = Gauge(
            "akidb_storage_deferred_work",
            "Start-up writes a full disk refused, waiting for space to run (schemas, full-text builds, job resumes)",
            registry=registry,
        )
        self.free_bytes = Gauge(
            "akidb_storage_free_bytes", "Bytes free on the disk holding storage.data_dir", registry=registry
        )

    def set_writable(self, writable: bool) -> None:
        """Record whether the last write (or start-up write) found room on the disk."""
        self.is_writable = writable
        self.writable.set(1 if writable else 0)

    def watch_free_space(self, data_dir: Path) -> None:
        """Read the data dir's free space at every scrape (NaN if it cannot be read)."""
        self.free_bytes.set_function(lambda: float("nan") if (free := free_bytes(data_dir)) is None else float(free))
