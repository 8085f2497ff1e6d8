"""POST /rerank (text-embeddings-inference's shape) and POST /v1/rerank (Cohere's, Jina's) on the one rerank path."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web

from gateway.api import keys
from gateway.api.http import read_body, struct_response
from gateway.api.schemas.common import decode, string_field
from gateway.api.schemas.rerank import RerankBody, V1RerankBody, ranks, v1_response
from gateway.errors import ApiError
from gateway.services.rerank import RerankRequest

Body = TypeVar("Body", RerankBody, V1RerankBody)

routes = web.RouteTableDef()


@routes.post("/rerank")
async def rerank(request: web.Request) -> web.Response:
    body, req = await parse(request, RerankBody)
    out = await request.app[keys.RERANK].rerank(req, transport="http")
    return struct_response(ranks(out, req.documents if body.return_text else None))


@routes.post("/v1/rerank")
async def v1_rerank(request: web.Request) -> web.Response:
    body, req = await parse(request, V1RerankBody)
    out = await request.app[keys.RERANK].rerank(req, transport="http")
    return struct_response(v1_response(out, body))


async def parse(request: web.Request, cls: type[Body]) -> tuple[Body, RerankRequest]:
    """The body as `cls` and the service's request; one refused (bad JSON, a field's rule, too many documents)
    is counted in the rerank metrics before its 4xx."""
    raw = b""
    try:
        raw = await read_body(request)
        body = decode(raw, cls)
        return body, body.to_request(request.app[keys.CONFIG].rerank.max_documents)
    except ApiError as exc:
        request.app[keys.RERANK].refused(exc, "http", string_field(raw, "model"))
        raise
