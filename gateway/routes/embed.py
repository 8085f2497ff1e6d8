"""POST /embed: the seed's embedding API."""

from __future__ import annotations

from aiohttp import web

from gateway import keys
from gateway.embedding import EmbedRequest
from gateway.errors import InvalidInput
from gateway.http import json_response, read_json
from gateway.validation import optional_bool, optional_str, reject_unknown, require_object, text_list
from shared.config import POOLINGS

FIELDS = ("texts", "model", "pooling", "normalize", "truncate")

routes = web.RouteTableDef()


def parse_embed(body: object, max_texts: int) -> EmbedRequest:
    """Validate an /embed body into an `EmbedRequest`."""
    obj = require_object(body)
    reject_unknown(obj, FIELDS)
    if "texts" not in obj:
        raise InvalidInput("texts is required: a list of strings to embed", param="texts")
    return EmbedRequest(
        texts=text_list(obj["texts"], "texts", max_texts),
        model=optional_str(obj, "model"),
        pooling=optional_str(obj, "pooling", POOLINGS),
        normalize=optional_bool(obj, "normalize", None),
        truncate=optional_bool(obj, "truncate", True),
    )


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
