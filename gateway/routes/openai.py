"""OpenAI-compatible routes: POST /v1/embeddings and GET /v1/models, on the one embedding path."""

from __future__ import annotations

from aiohttp import web

from gateway import keys
from gateway.errors import ModelNotFound
from gateway.http import json_response, read_json
from gateway.openai_format import check_dimensions, embeddings_body, model_entry, parse_request, shorten

routes = web.RouteTableDef()


@routes.post("/v1/embeddings")
async def embeddings(request: web.Request) -> web.Response:
    cfg = request.app[keys.CONFIG]
    req = parse_request(await read_json(request), cfg.batching.max_texts_per_request)
    service = request.app[keys.EMBEDDING]
    # Refuse a bad `dimensions` before any worker spends time on the texts.
    check_dimensions(req.dimensions, service.resolve_model(req.embed.model))
    out = await service.embed(req.embed, transport="openai")
    vectors = shorten(out.vectors, req.dimensions)
    return json_response(embeddings_body(vectors, out.model.name, out.total_tokens, req.encoding_format))


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
