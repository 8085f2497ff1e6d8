"""OpenAI-compatible routes: POST /v1/embeddings and GET /v1/models, on the one embedding path."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.api import keys
from gateway.api.http import json_response, read_body
from gateway.api.openai_format import check_dimensions, embeddings_body, model_entry, shorten
from gateway.api.schemas import openai as schema
from gateway.api.schemas.common import string_field
from gateway.errors import ApiError, ModelNotFound

routes = web.RouteTableDef()


@routes.post("/v1/embeddings")
async def embeddings(request: web.Request) -> web.Response:
    started = time.perf_counter()
    service = request.app[keys.EMBEDDING]
    raw = b""
    try:
        raw = await read_body(request)
        body = schema.parse(raw)
        req = body.to_request(request.app[keys.CONFIG].batching.max_texts_per_request)
        # Refuse a bad `dimensions` before any worker spends time on the texts.
        check_dimensions(body.dimensions, service.resolve_model(req.model))
    except ApiError as exc:
        service.refused(exc, "openai", started, model=string_field(raw, "model"))
        raise
    out = await service.embed(req, transport="openai")
    vectors = shorten(out.vectors, body.dimensions)
    return json_response(embeddings_body(vectors, out.model.name, out.total_tokens, body.encoding_format or "float"))


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    served = request.app[keys.WORKERS].models()
    return json_response({"object": "list", "data": [model_entry(info) for info in served]})


@routes.get("/v1/models/{model:.+}")
async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    info = request.app[keys.WORKERS].model_info(name)
    if info is None:
        raise ModelNotFound(f"model {name!r} is not served here; GET /v1/models lists those that are", param="model")
    return json_response(model_entry(info))
