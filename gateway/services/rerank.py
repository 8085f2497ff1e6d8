"""The one reranking path every front door shares (/rerank, /v1/rerank, gRPC Rerank, search's rerank step).

A request's documents, each paired with its query, go through the dispatcher and the batcher as
rerank chunks of up to `max_batch_size` pairs: coalesced with other requests' pairs, requeued when
a worker dies, refused when the queue is full, exactly as embedding chunks are. Workers return raw
logits; the sigmoid (the 0..1 score sentence-transformers' CrossEncoder.predict gives) is applied
here unless the caller asked for raw scores.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from gateway.dispatch.batcher import ChunkResult, Pending
from gateway.dispatch.fleet import WorkerView
from gateway.errors import ApiError, InputTooLong
from gateway.metrics import Metrics
from gateway.services.chunks import run_chunks
from gateway.services.embedding import served_model
from gateway.transport.interface import Transport
from shared import models
from shared.config import Config
from shared.protocol import ModelInfo
from shared.scores import sigmoid


@dataclass(frozen=True)
class RerankRequest:
    """A validated query and its documents, whatever transport they came in on."""

    query: str
    documents: tuple[str, ...]
    model: str | None = None  # None: rerank.default_model
    raw_scores: bool = False
    truncate: bool = True
    field: str = "documents"  # the request's name for the documents, for errors that point at them


@dataclass(frozen=True)
class RerankOutcome:
    scores: np.ndarray  # (len(documents),) float32, in the documents' order: sigmoid, or raw logits
    token_counts: list[int]
    model: ModelInfo
    duration_ms: int

    @property
    def total_tokens(self) -> int:
        return sum(self.token_counts)

    def ranking(self) -> list[int]:
        """Document indexes, best first; ties keep the documents' order."""
        return sorted(range(len(self.scores)), key=lambda i: -float(self.scores[i]))


class RerankService:
    """Resolve the reranker, queue the pairs in chunks through the transport, score, check truncation."""

    def __init__(self, cfg: Config, transport: Transport, metrics: Metrics) -> None:
        self.cfg = cfg
        self.transport = transport
        self.workers: WorkerView = transport.workers
        self.metrics = metrics
        self.default_model = models.canonical(cfg.rerank.default_model)

    def resolve_model(self, name: str | None) -> ModelInfo:
        """The announced reranker behind a name or alias. Raises `ModelNotFound`, `NoWorker`, or
        `InvalidInput` for an embedding model."""
        return served_model(self.workers, name, self.default_model, "rerank")

    async def rerank(
        self, req: RerankRequest, transport: str = "http", timeout_s: float | None = None
    ) -> RerankOutcome:
        """Score every document against the query and account for it in the metrics, whatever the outcome."""
        try:
            outcome = await self._rerank(req, timeout_s or self.cfg.server.request_timeout_s, bool(timeout_s))
        except ApiError as exc:
            self.refused(exc, transport, req.model)
            raise
        name = outcome.model.name
        self.metrics.rerank_requests.labels(name, "ok", transport).inc()
        self.metrics.rerank_pairs.labels(name).inc(len(req.documents))
        return outcome

    def refused(self, error: ApiError, transport: str, model: str | None = None) -> None:
        """Count a failed request, also one refused before `rerank` (its body), so error rates see every one.
        The label is a served model's name, the default's, or "unknown": names clients make up add no series."""
        label = self.default_model if model is None else (self.workers.resolve(model) or "unknown")
        self.metrics.rerank_requests.labels(label, error.code, transport).inc()

    async def _rerank(self, req: RerankRequest, timeout_s: float, limit_from_caller: bool) -> RerankOutcome:
        started = time.perf_counter()
        info = self.resolve_model(req.model)

        def make(chunk: tuple[str, ...], deadline: float, now: float, future: asyncio.Future[ChunkResult]) -> Pending:
            return Pending(info.name, chunk, "", False, deadline, now, future, query=req.query)

        size = self.cfg.batching.max_batch_size
        results = await run_chunks(self.transport, size, req.documents, make, timeout_s, limit_from_caller)
        logits = np.concatenate([r.vectors.reshape(-1) for r in results])
        counts = [n for r in results for n in r.token_counts]
        input_tokens = [n for r in results for n in r.input_tokens]
        self._check_truncation(info, req, counts, input_tokens)
        scores = logits if req.raw_scores else sigmoid(logits)
        return RerankOutcome(scores, counts, info, round((time.perf_counter() - started) * 1000))

    def _check_truncation(
        self, info: ModelInfo, req: RerankRequest, counts: list[int], input_tokens: list[int]
    ) -> None:
        over = [(i, n) for i, n in enumerate(input_tokens) if n > counts[i]]
        if over and not req.truncate:
            i, n = over[0]
            raise InputTooLong(
                f"{req.field}[{i}] with the query makes {n} tokens, over the limit of {info.max_tokens} for "
                f"model {info.name!r}; shorten it, or send truncate: true to score the document's first tokens",
                param=req.field,
            )
        if over:
            self.metrics.rerank_truncated.labels(info.name).inc(len(over))
