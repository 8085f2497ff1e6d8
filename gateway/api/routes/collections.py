"""/collections: create, list, describe and delete collections."""

from __future__ import annotations

from aiohttp import web

from gateway.api import auth, keys
from gateway.api.http import read_as, struct_response
from gateway.api.schemas.collections import CollectionBody, CollectionInfo, CollectionList, Deleted

routes = web.RouteTableDef()


@routes.post("/collections")
async def create_collection(request: web.Request) -> web.Response:
    spec = (await read_as(request, CollectionBody)).to_spec()
    auth.check_collection(request, spec.name)
    service = request.app[keys.COLLECTIONS]
    store = await service.create(spec)
    return struct_response(CollectionInfo.of(store.info, await service.count_documents(store)), status=201)


@routes.get("/collections")
async def list_collections(request: web.Request) -> web.Response:
    service = request.app[keys.COLLECTIONS]
    listed = [s for s in service.listed() if auth.may_see(request, s.info.name)]
    return struct_response(
        CollectionList([CollectionInfo.of(s.info, await service.count_documents(s)) for s in listed])
    )


@routes.get("/collections/{collection}")
async def get_collection(request: web.Request) -> web.Response:
    service = request.app[keys.COLLECTIONS]
    store = service.get(request.match_info["collection"])
    return struct_response(CollectionInfo.of(store.info, await service.count_documents(store)))


@routes.delete("/collections/{collection}")
async def delete_collection(request: web.Request) -> web.Response:
    deleted = await request.app[keys.COLLECTIONS].delete(request.match_info["collection"])
    return struct_response(Deleted(id=deleted, deleted=True))
