"""The gateway's Prometheus metrics, created against a registry passed in (tests get their own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256)


class Metrics:
    """Embedding-path metrics. Each is updated on the line where its state changes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "akidb_embedding_requests_total",
            "Embedding requests by model, outcome (ok or an error code) and transport",
            ["model", "status", "transport"],
            registry=registry,
        )
        self.latency = Histogram(
            "akidb_embedding_latency_seconds",
            "Embedding request latency in the gateway, receipt to response",
            ["transport"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "akidb_embedding_batch_size",
            "Texts per worker job",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "akidb_embedding_queue_depth", "Texts waiting in the gateway for a worker", registry=registry
        )
        self.workers = Gauge(
            "akidb_workers_connected", "Live workers by the model they serve", ["model"], registry=registry
        )
        self.texts = Counter("akidb_embedding_texts_total", "Texts embedded", ["model"], registry=registry)
        self.tokens = Counter("akidb_embedding_tokens_total", "Tokens embedded", ["model"], registry=registry)
        self.truncated = Counter(
            "akidb_embedding_truncated_texts_total",
            "Texts cut at the model's max_tokens",
            ["model"],
            registry=registry,
        )
        self.rerank_requests = Counter(
            "akidb_rerank_requests_total",
            "Rerank requests (/rerank, /v1/rerank, gRPC Rerank, search's rerank) by model, outcome and transport",
            ["model", "status", "transport"],
            registry=registry,
        )
        self.rerank_pairs = Counter(
            "akidb_rerank_pairs_total", "(query, document) pairs scored", ["model"], registry=registry
        )
        self.rerank_truncated = Counter(
            "akidb_rerank_truncated_pairs_total",
            "Pairs whose document was cut at the reranker's max_tokens",
            ["model"],
            registry=registry,
        )
        self.jobs_requeued = Counter(
            "akidb_jobs_requeued_total", "Jobs put back on the queue after their worker was lost", registry=registry
        )
        self.workers_expired = Counter(
            "akidb_workers_expired_total", "Workers dropped for missing heartbeats", registry=registry
        )
        self.abandoned = Counter(
            "akidb_embedding_abandoned_total",
            "Queued texts skipped because their caller had already gone (timeout or disconnect)",
            registry=registry,
        )
        self.frames_dropped = Counter(
            "akidb_protocol_frames_dropped_total", "Malformed or wrong-version frames from peers", registry=registry
        )
        self.protocol_violations = Counter(
            "akidb_protocol_violations_total",
            "Registered workers sent DISCONNECT and forgotten for breaking the protocol",
            registry=registry,
        )
        self.worker_auth_refused = Counter(
            "akidb_worker_auth_refused_total",
            "Peers refused at the ZeroMQ handshake: unknown_key (ZAP), handshake_failed (no CURVE, wrong gateway key)",
            ["reason"],
            registry=registry,
        )
        self.workers_refused = Counter(
            "akidb_workers_refused_total",
            "READYs turned away because they announced a known model with another dimension",
            registry=registry,
        )
        self.poison_jobs = Counter(
            "akidb_poison_jobs_total",
            "Jobs failed with worker_failed because the workers that took them died twice in a row",
            registry=registry,
        )
        self.worker_compute = Histogram(
            "akidb_worker_compute_seconds",
            "Worker-reported compute time per job",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cache_hits = Counter(
            "akidb_embedding_cache_hits_total", "Texts answered from the embedding cache", registry=registry
        )
        self.cache_misses = Counter(
            "akidb_embedding_cache_misses_total",
            "Texts looked up in the embedding cache and not found",
            registry=registry,
        )
        self.cache_evictions = Counter(
            "akidb_embedding_cache_evictions_total",
            "Vectors dropped from the embedding cache (least recently used) to stay within cache.max_bytes",
            registry=registry,
        )
        self.cache_bytes = Gauge(
            "akidb_embedding_cache_bytes", "Bytes the embedding cache holds (vectors + bookkeeping)", registry=registry
        )
        self.cache_entries = Gauge(
            "akidb_embedding_cache_entries", "Vectors the embedding cache holds", registry=registry
        )
