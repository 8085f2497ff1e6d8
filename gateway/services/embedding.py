"""The one embedding path every front door shares (REST, gRPC, OpenAI, document ingest)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from gateway.dispatch.batcher import ChunkResult, Pending
from gateway.dispatch.embed_cache import CachedEmbedding, EmbeddingCache, cache_key, entry
from gateway.dispatch.fleet import WorkerView
from gateway.errors import ApiError, InputTooLong, InvalidInput, ModelNotFound, NoWorker
from gateway.metrics import Metrics
from gateway.services.chunks import run_chunks
from gateway.transport.interface import Transport
from shared import models
from shared.config import Config
from shared.protocol import ModelInfo


@dataclass(frozen=True)
class EmbedRequest:
    """Validated texts and options, whatever transport they came in on."""

    texts: tuple[str, ...]
    model: str | None = None
    pooling: str | None = None
    normalize: bool | None = None  # None: embedding.normalize from the config
    truncate: bool = True
    # "query" or "document": put the model's prompt for it before each text (ModelInfo.prompt_for).
    input_type: str | None = None


@dataclass(frozen=True)
class EmbedOutcome:
    vectors: np.ndarray  # (len(texts), dimension) float32
    token_counts: list[int]
    model: ModelInfo
    duration_ms: int

    @property
    def total_tokens(self) -> int:
        return sum(self.token_counts)


class EmbeddingService:
    """Resolve the model, answer what the cache holds, queue the rest in chunks through the transport, check."""

    def __init__(self, cfg: Config, transport: Transport, metrics: Metrics) -> None:
        self.cfg = cfg
        self.transport = transport
        self.workers: WorkerView = transport.workers
        self.metrics = metrics
        self.default_model = models.canonical(cfg.embedding.model_name)
        self.cache = EmbeddingCache(cfg.cache.max_bytes, metrics)

    def resolve_model(self, name: str | None) -> ModelInfo:
        """The announced embedding model behind a name or alias. Raises `ModelNotFound`, `NoWorker`, or
        `InvalidInput` for a reranker."""
        return served_model(self.workers, name, self.default_model, "embed")

    async def embed(self, req: EmbedRequest, transport: str = "http", timeout_s: float | None = None) -> EmbedOutcome:
        """Embed and account for it in the metrics, whatever the outcome."""
        started = time.perf_counter()
        try:
            outcome = await self._embed(
                req, timeout_s or self.cfg.server.request_timeout_s, limit_from_caller=bool(timeout_s)
            )
        except ApiError as exc:
            self.metrics.requests.labels(self._model_label(req.model), exc.code, transport).inc()
            raise
        finally:
            self.metrics.latency.labels(transport).observe(time.perf_counter() - started)
        name = outcome.model.name
        self.metrics.requests.labels(name, "ok", transport).inc()
        self.metrics.texts.labels(name).inc(len(req.texts))
        self.metrics.tokens.labels(name).inc(outcome.total_tokens)
        return outcome

    def refused(self, error: ApiError, transport: str, started: float, model: str | None = None) -> None:
        """Count and time a request refused before `embed` (its body, its model check) as `embed` counts
        its failures, so error-rate dashboards see every request."""
        self.metrics.requests.labels(self._model_label(model), error.code, transport).inc()
        self.metrics.latency.labels(transport).observe(time.perf_counter() - started)

    def _model_label(self, name: str | None) -> str:
        """The metrics label for a failed request's model: a known model's name, else "unknown", so that
        names clients make up cannot add one time series each to /metrics."""
        if name is None:
            return self.default_model
        spec = models.find(name)
        return self.workers.resolve(name) or (spec.name if spec else "unknown")

    async def _embed(self, req: EmbedRequest, timeout_s: float, limit_from_caller: bool) -> EmbedOutcome:
        loop = asyncio.get_running_loop()
        started = loop.time()
        info = self.resolve_model(req.model)
        pooling = req.pooling or info.pooling  # checked where requests come in (gateway/schemas)
        normalize = self.cfg.embedding.normalize if req.normalize is None else req.normalize
        prompt = info.prompt_for(req.input_type)
        keys = self._cache_keys(info.name, pooling, normalize, prompt, req)
        found: list[CachedEmbedding | None] = self.cache.get_many(keys) if keys else [None] * len(req.texts)
        # Only the texts the cache lacks go to a worker, each once however often the request repeats it.
        slot: dict[bytes | int, int] = {}
        order: list[int] = []  # request index of each text sent, in sending order
        for i, hit in enumerate(found):
            key = keys[i] if keys else i
            if hit is None and key not in slot:
                slot[key] = len(order)
                order.append(i)
        computed = None
        if order:
            texts = tuple(req.texts[i] for i in order)
            computed = await self._compute(info, texts, pooling, normalize, prompt, timeout_s, limit_from_caller)
            if keys:
                self.cache.put_many(
                    [(keys[i], entry(computed[0][j], computed[1][j], computed[2][j])) for j, i in enumerate(order)]
                )
        if computed is not None and len(order) == len(req.texts):
            vectors, counts, input_tokens = computed  # nothing cached: the worker's rows as they came
        else:
            vectors, counts, input_tokens = _assemble(found, keys, slot, computed)
        self._check_truncation(info, req.truncate, counts, input_tokens)
        return EmbedOutcome(vectors, counts, info, round((loop.time() - started) * 1000))

    def _cache_keys(self, model: str, pooling: str, normalize: bool, prompt: str, req: EmbedRequest) -> list[bytes]:
        """One key per text ([] when the cache is off); the prompt (query/document, or "") is part of it."""
        if not self.cache.enabled:
            return []
        return [cache_key(model, pooling, normalize, req.truncate, prompt, text) for text in req.texts]

    async def _compute(
        self, info: ModelInfo, texts: tuple[str, ...], pooling: str, normalize: bool, prompt: str,
        timeout_s: float, limit_from_caller: bool,
    ) -> tuple[np.ndarray, list[int], list[int]]:  # fmt: skip
        """Queue the texts in chunks of max_batch_size; (vectors, token counts, input tokens) in order."""

        def make(chunk: tuple[str, ...], deadline: float, now: float, future: asyncio.Future[ChunkResult]) -> Pending:
            return Pending(info.name, chunk, pooling, normalize, deadline, now, future, prompt=prompt)

        size = self.cfg.batching.max_batch_size
        results = await run_chunks(self.transport, size, texts, make, timeout_s, limit_from_caller)
        vectors = results[0].vectors if len(results) == 1 else np.concatenate([r.vectors for r in results])
        counts = [n for r in results for n in r.token_counts]
        input_tokens = [n for r in results for n in r.input_tokens]
        return vectors, counts, input_tokens

    def _check_truncation(self, info: ModelInfo, allowed: bool, counts: list[int], input_tokens: list[int]) -> None:
        over = [(i, n) for i, n in enumerate(input_tokens) if n > counts[i]]
        if over and not allowed:
            i, n = over[0]
            raise InputTooLong(
                f"texts[{i}] has {n} tokens, over the limit of {info.max_tokens} for model {info.name!r}; "
                "shorten it, or send truncate: true to embed its first tokens",
                param="texts",
            )
        if over:
            self.metrics.truncated.labels(info.name).inc(len(over))


KIND_USE = {
    "embed": "an embedding model: it makes vectors; name it in /embed, /v1/embeddings or a collection",
    "rerank": "a reranker: it scores (query, document) pairs; name it in /rerank, /v1/rerank or search's rerank",
}


def served_model(workers: WorkerView, name: str | None, default: str, kind: str) -> ModelInfo:
    """The announced model of `kind` behind a name or alias (`default` when None): `ModelNotFound` if none
    announced it, `NoWorker` if none serves it now, `InvalidInput` (param `model`) if it is of the other kind."""
    wanted = name or default
    info = workers.model_info(wanted)
    if info is None:
        if models.canonical(wanted) == default:
            flag = "" if kind == "embed" else f" --model {default}"
            raise NoWorker(f"no worker serves {default!r} yet; start one with `akidb-worker{flag}`")
        served = [m.name for m in workers.models()]
        raise ModelNotFound(
            f"model {wanted!r} is not served here (served: {', '.join(served) or 'none'}); "
            f"start a worker with `akidb-worker --model {wanted}`",
            param="model",
        )
    if info.kind != kind:
        raise InvalidInput(f"model {info.name!r} is {KIND_USE[info.kind]}", param="model")
    if workers.live_workers(info.name) == 0:
        raise NoWorker(f"no worker for model {info.name!r} is connected right now; retry shortly")
    return info


def _assemble(
    found: list[CachedEmbedding | None],
    keys: list[bytes],
    slot: dict[bytes | int, int],
    computed: tuple[np.ndarray, list[int], list[int]] | None,
) -> tuple[np.ndarray, list[int], list[int]]:
    """The request's rows in order, each from the cache or from the texts just computed."""
    rows: list[np.ndarray] = []
    counts: list[int] = []
    input_tokens: list[int] = []
    for i, hit in enumerate(found):
        if hit is not None:
            rows.append(hit.vector)
            counts.append(hit.token_count)
            input_tokens.append(hit.input_tokens)
        else:
            assert computed is not None
            j = slot[keys[i] if keys else i]
            rows.append(computed[0][j])
            counts.append(computed[1][j])
            input_tokens.append(computed[2][j])
    return np.stack(rows), counts, input_tokens
