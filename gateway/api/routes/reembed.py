"""/collections/{collection}/reembed and its jobs: switch a collection to another embedding model."""

from __future__ import annotations

from aiohttp import web

from gateway.api import keys
from gateway.api.http import json_response, read_as
from gateway.api.schemas.reembed import ReembedBody

routes = web.RouteTableDef()


@routes.post("/collections/{collection}/reembed")
async def start_reembed(request: web.Request) -> web.Response:
    body = await read_as(request, ReembedBody)
    job = await request.app[keys.REEMBED].start(
        request.match_info["collection"], body.model, body.pooling, body.drop_vector_only
    )
    return json_response(job, status=202)


@routes.get("/collections/{collection}/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    job = await request.app[keys.REEMBED].status(request.match_info["collection"], request.match_info["job_id"])
    return json_response(job)


@routes.delete("/collections/{collection}/jobs/{job_id}")
async def cancel_job(request: web.Request) -> web.Response:
    job = await request.app[keys.REEMBED].cancel(request.match_info["collection"], request.match_info["job_id"])
    return json_response(job)
