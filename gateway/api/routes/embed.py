"""POST /embed: the seed's embedding API."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.api import keys
from gateway.api.http import json_response, read_body
from gateway.api.schemas.common import decode, string_field
from gateway.api.schemas.embed import EmbedBody
from gateway.errors import ApiError

routes = web.RouteTableDef()


@routes.post("/embed")
async def embed(request: web.Request) -> web.Response:
    started = time.perf_counter()
    service = request.app[keys.EMBEDDING]
    raw = b""
    try:
        raw = await read_body(request)
        req = decode(raw, EmbedBody).to_request(request.app[keys.CONFIG].batching.max_texts_per_request)
    except ApiError as exc:
        service.refused(exc, "http", started, model=string_field(raw, "model"))
        raise
    out = await service.embed(req, transport="http")
    return json_response(
        {
            "embeddings": out.vectors,
            "model": out.model.name,
            "dimension": out.model.dimension,
            "usage": {"total_tokens": out.total_tokens, "duration_ms": out.duration_ms},
        }
    )
