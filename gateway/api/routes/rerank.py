"""POST /rerank (text-embeddings-inference's shape) and POST /v1/rerank (Cohere's, Jina's) on the one rerank path."""

from __future__ import annotations

from aiohttp import web

from gateway.api import keys
from gateway.api.http import read_body, struct_response
from gateway.api.schemas.common import decode
from gateway.api.schemas.rerank import RerankBody, V1RerankBody, ranks, v1_response

routes = web.RouteTableDef()


@routes.post("/rerank")
async def rerank(request: web.Request) -> web.Response:
    body = decode(await read_body(request), RerankBody)
    req = body.to_request(request.app[keys.CONFIG].rerank.max_documents)
    out = await request.app[keys.RERANK].rerank(req, transport="http")
    return struct_response(ranks(out, req.documents if body.return_text else None))


@routes.post("/v1/rerank")
async def v1_rerank(request: web.Request) -> web.Response:
    body = decode(await read_body(request), V1RerankBody)
    req = body.to_request(request.app[keys.CONFIG].rerank.max_documents)
    out = await request.app[keys.RERANK].rerank(req, transport="http")
    return struct_response(v1_response(out, body))
