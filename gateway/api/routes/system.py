"""Liveness, readiness, the model list and Prometheus metrics."""

from __future__ import annotations

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api import keys
from gateway.api.http import struct_response
from gateway.api.schemas.system import Health, ModelList, ModelRow, Ready, StorageState, WorkerDetail
from gateway.errors import NotReady

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """Liveness: the gateway process answers. Says how many workers it sees, but never fails on that."""
    return struct_response(Health(status="ok", workers=request.app[keys.WORKERS].worker_count()))


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    """Readiness: 503 until a worker for the default model is connected.

    A full disk leaves the gateway ready (it serves reads, searches and embeddings); `storage` says
    whether writes are stored and which start-up writes wait for space.
    """
    service = request.app[keys.EMBEDDING]
    model = service.default_model
    count = request.app[keys.WORKERS].live_workers(model)
    if count == 0:
        raise NotReady(f"no worker for the default model {model!r} is connected")
    collections = request.app[keys.COLLECTIONS]
    storage = StorageState(writable=collections.metrics.is_writable, deferred=collections.deferred.names())
    return struct_response(Ready(status="ready", model=model, workers=count, storage=storage))


@routes.get("/models")
async def list_models(request: web.Request) -> web.Response:
    """Every model announced since start, with its facts, live worker count and each live worker's own facts.

    `backend`, `device` and `precision` at the model's level are those of its first live worker
    (else of its first announcement); `workers_detail` gives every worker's own.
    """
    view = request.app[keys.WORKERS]
    # Each kind's default: the embedding model, and the reranker of requests that name none.
    defaults = {request.app[keys.EMBEDDING].default_model, request.app[keys.RERANK].default_model}
    rows: list[ModelRow] = []
    for info in view.models():
        detail = view.serving(info.name)
        lead = detail[0] if detail else info
        rows.append(
            ModelRow(
                name=info.name,
                dimension=info.dimension,
                max_tokens=info.max_tokens,
                kind=info.kind,
                pooling=info.pooling,
                aliases=list(info.aliases),
                backend=lead.backend,
                device=lead.device,
                precision=lead.precision,
                workers=view.live_workers(info.name),
                default=info.name in defaults,
                query_prompt=info.query_prompt,
                document_prompt=info.document_prompt,
                workers_detail=[msgspec.convert(w, WorkerDetail, from_attributes=True) for w in detail],
            )
        )
    return struct_response(ModelList(rows))


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[keys.REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
