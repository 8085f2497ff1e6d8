"""EmbeddingService and RerankService handlers, and the one place an `ApiError` becomes a gRPC status."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc
import structlog

from gateway.api.rpc.convert import (
    to_embed_request,
    to_embedding_response,
    to_model_info_response,
    to_rerank_request,
    to_rerank_response,
)
from gateway.errors import ApiError, as_api_error
from gateway.services.embedding import EmbeddingService
from gateway.services.rerank import RerankService
from shared.config import Config
from shared.proto import embedding_pb2 as pb
from shared.proto import embedding_pb2_grpc as pb_grpc

log = structlog.get_logger("gateway.grpc")

T = TypeVar("T")

# Trailing metadata on every error: our stable error code (REST's `error.code`) and, for
# UNAVAILABLE, when to retry (REST's Retry-After header).
CODE_KEY = "akidb-error-code"
REQUEST_ID_KEY = "x-request-id"


class EmbeddingServicer(pb_grpc.EmbeddingServiceServicer):
    """Thin handlers: proto → `EmbedRequest` → the shared `EmbeddingService` → proto."""

    def __init__(self, cfg: Config, service: EmbeddingService) -> None:
        self.cfg = cfg
        self.service = service

    async def Embed(self, request: pb.EmbeddingRequest, context: grpc.aio.ServicerContext) -> pb.EmbeddingResponse:
        """Embed texts; the client's deadline (if sooner than server.request_timeout_s) bounds the wait."""
        return await answer(context, self._embed(request, context))

    async def GetModelInfo(
        self, request: pb.ModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfoResponse:
        """The served model's name, dimension and max_tokens."""
        return await answer(context, self._model_info(request))

    async def _embed(self, request: pb.EmbeddingRequest, context: grpc.aio.ServicerContext) -> pb.EmbeddingResponse:
        started = time.perf_counter()
        try:
            req = to_embed_request(request, self.cfg.batching.max_texts_per_request)
        except ApiError as exc:
            self.service.refused(exc, "grpc", started, model=request.model or None)
            raise
        out = await self.service.embed(req, transport="grpc", timeout_s=self._budget(context))
        return to_embedding_response(out)

    async def _model_info(self, request: pb.ModelInfoRequest) -> pb.ModelInfoResponse:
        return to_model_info_response(self.service.resolve_model(request.model or None))

    def _budget(self, context: grpc.aio.ServicerContext) -> float | None:
        return budget(self.cfg, context)


class RerankServicer(pb_grpc.RerankServiceServicer):
    """Thin handler: proto → `RerankRequest` → the shared `RerankService` → proto."""

    def __init__(self, cfg: Config, service: RerankService) -> None:
        self.cfg = cfg
        self.service = service

    async def Rerank(self, request: pb.RerankRequest, context: grpc.aio.ServicerContext) -> pb.RerankResponse:
        """Score texts against a query; the client's deadline (if sooner) bounds the wait."""
        return await answer(context, self._rerank(request, context))

    async def _rerank(self, request: pb.RerankRequest, context: grpc.aio.ServicerContext) -> pb.RerankResponse:
        try:
            req = to_rerank_request(request, self.cfg.rerank.max_documents)
        except ApiError as exc:
            self.service.refused(exc, "grpc", request.model or None)
            raise
        out = await self.service.rerank(req, transport="grpc", timeout_s=budget(self.cfg, context))
        return to_rerank_response(out, req.documents if request.return_text else None)


def budget(cfg: Config, context: grpc.aio.ServicerContext) -> float | None:
    """Seconds left on the client's deadline when it is sooner than ours; None: server.request_timeout_s."""
    remaining = context.time_remaining()
    if remaining is None or remaining >= cfg.server.request_timeout_s:
        return None
    # A floor, because a zero would read as "no timeout given" downstream.
    return max(remaining, 0.001)


async def answer(context: grpc.aio.ServicerContext, work: Awaitable[T]) -> T:
    """Run one call with a request id; an `ApiError` (or a mapped storage error) aborts with its gRPC status."""
    request_id = _metadata(context).get(REQUEST_ID_KEY) or uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        return await work
    except Exception as exc:
        mapped = as_api_error(exc)
        if mapped is None:
            log.exception("unhandled_error", method="grpc")
        error = mapped or ApiError("internal error; see the gateway log for this request id")
    # Abort outside the `except` blocks: it raises, and must not be caught as a bug above.
    await context.abort(error.grpc_status, error.message, trailing_metadata=error_metadata(error, request_id))
    raise AssertionError("unreachable: context.abort raises")


def error_metadata(error: ApiError, request_id: str) -> tuple[tuple[str, str], ...]:
    """What a client can match on besides the status: our error code, the request id, Retry-After."""
    pairs = [(CODE_KEY, error.code), (REQUEST_ID_KEY, request_id)]
    if "Retry-After" in error.headers:
        pairs.append(("retry-after", error.headers["Retry-After"]))
    return tuple(pairs)


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, Any]:
    return {key: value for key, value in (context.invocation_metadata() or ())}
