"""/collections: create, list, describe and delete collections."""

from __future__ import annotations

from aiohttp import web

from gateway.api import auth, keys
from gateway.api.http import json_response, read_as
from gateway.api.schemas.collections import CollectionBody

routes = web.RouteTableDef()


@routes.post("/collections")
async def create_collection(request: web.Request) -> web.Response:
    spec = (await read_as(request, CollectionBody)).to_spec()
    auth.check_collection(request, spec.name)
    return json_response(await request.app[keys.COLLECTIONS].create(spec), status=201)


@routes.get("/collections")
async def list_collections(request: web.Request) -> web.Response:
    described = await request.app[keys.COLLECTIONS].describe_all()
    return json_response({"collections": [c for c in described if auth.may_see(request, c["name"])]})


@routes.get("/collections/{collection}")
async def get_collection(request: web.Request) -> web.Response:
    return json_response(await request.app[keys.COLLECTIONS].describe_one(request.match_info["collection"]))


@routes.delete("/collections/{collection}")
async def delete_collection(request: web.Request) -> web.Response:
    deleted = await request.app[keys.COLLECTIONS].delete(request.match_info["collection"])
    return json_response({"id": deleted, "deleted": True})
