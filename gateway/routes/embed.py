"""POST /embed: the seed's embedding API."""

from __future__ import annotations

from aiohttp import web

from gateway import keys
from gateway.embed_input import parse_embed
from gateway.http import json_response, read_json

routes = web.RouteTableDef()


@routes.post("/embed")
async def embed(request: web.Request) -> web.Response:
    cfg = request.app[keys.CONFIG]
    req = parse_embed(await read_json(request), cfg.batching.max_texts_per_request)
    out = await request.app[keys.EMBEDDING].embed(req, transport="http")
    return json_response(
        {
            "embeddings": out.vectors,
            "model": out.model.name,
            "dimension": out.model.dimension,
            "usage": {"total_tokens": out.total_tokens, "duration_ms": out.duration_ms},
        }
    )
