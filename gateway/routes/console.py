"""The web console at /ui (static files, no build step) and GET /workers, which its workers page reads."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from gateway import keys
from gateway.console import STATIC
from gateway.http import json_response

routes = web.RouteTableDef()


@routes.get("/ui")
async def console_redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


@routes.get("/ui/")
async def console_index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


routes.static("/ui/static", STATIC)


def worker_rows(app: web.Application) -> tuple[list[dict[str, Any]], int]:
    """Every live worker (id, host, pid, models, backend, device, precision, capacity, inflight) and the queue depth."""
    view = app[keys.WORKERS]
    return [dataclasses.asdict(w) for w in view.workers()], view.queued_texts()


@routes.get("/workers")
async def list_workers(request: web.Request) -> web.Response:
    """Connected workers, for the console's workers page."""
    rows, depth = worker_rows(request.app)
    return json_response({"workers": rows, "queue_depth": depth})
