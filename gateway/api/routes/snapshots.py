"""/collections/{collection}/snapshots and /collections/restore: collection snapshots (backups) and restores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from gateway.api import auth, keys
from gateway.api.http import struct_response
from gateway.api.schemas.collections import CollectionInfo
from gateway.api.schemas.common import from_query
from gateway.api.schemas.snapshots import RestoreQuery, SnapshotDeleted, SnapshotInfo, SnapshotList
from gateway.errors import PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from gateway.storage.backup import SUFFIX

routes = web.RouteTableDef()
UPLOAD_TYPE = "application/octet-stream"
CHUNK = 1 << 20


@routes.post("/collections/{collection}/snapshots")
async def create_snapshot(request: web.Request) -> web.Response:
    made = await request.app[keys.SNAPSHOTS].create(request.match_info["collection"])
    return struct_response(msgspec.convert(made, SnapshotInfo, from_attributes=True), status=201)


@routes.get("/collections/{collection}/snapshots")
async def list_snapshots(request: web.Request) -> web.Response:
    stored = request.app[keys.SNAPSHOTS].list(request.match_info["collection"])
    return struct_response(SnapshotList([msgspec.convert(b, SnapshotInfo, from_attributes=True) for b in stored]))


@routes.get("/collections/{collection}/snapshots/{name}")
async def download_snapshot(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    path = request.app[keys.SNAPSHOTS].path(request.match_info["collection"], name)
    headers = {"Content-Type": UPLOAD_TYPE, "Content-Disposition": f'attachment; filename="{name}{SUFFIX}"'}
    return web.FileResponse(path, chunk_size=CHUNK, headers=headers)


@routes.delete("/collections/{collection}/snapshots/{name}")
async def delete_snapshot(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await request.app[keys.SNAPSHOTS].delete(request.match_info["collection"], name)
    return struct_response(SnapshotDeleted(name=name, deleted=True))


@routes.post("/collections/restore")
async def restore_collection(request: web.Request) -> web.Response:
    """The body is the snapshot file itself, streamed to disk: server.max_body_bytes does not apply to it
    (gateway/api/slow_clients.py leaves it unread), storage.max_restore_bytes does."""
    name = from_query(request.query, RestoreQuery).name
    auth.check_collection(request, name)
    if request.content_type != UPLOAD_TYPE:
        raise UnsupportedMediaType(
            f"Content-Type must be {UPLOAD_TYPE} (the snapshot file as the body), got {request.content_type or 'none'}"
        )
    service = request.app[keys.SNAPSHOTS]
    length = request.content_length
    if length is not None and length > service.max_restore_bytes:
        raise PayloadTooLarge(f"snapshot upload is {length} bytes, over storage.max_restore_bytes")
    timeout = request.app[keys.CONFIG].server.body_timeout_s
    store = await service.restore(name, _chunks(request, timeout))
    count = await request.app[keys.COLLECTIONS].count_documents(store)
    return struct_response(CollectionInfo.of(store.info, count), status=201)


async def _chunks(request: web.Request, stall_s: float) -> AsyncIterator[bytes]:
    """The body in chunks as they arrive; a gap longer than `stall_s` (server.body_timeout_s) is 408.

    A snapshot may take longer than server.body_timeout_s to upload, so here it bounds a stall, not the whole."""
    while True:
        try:
            async with asyncio.timeout(stall_s):
                chunk = await request.content.readany()
        except TimeoutError:
            request.protocol.force_close()
            raise RequestTimeout(f"no snapshot data received for {stall_s} s (server.body_timeout_s)") from None
        if not chunk:
            return
        yield chunk
