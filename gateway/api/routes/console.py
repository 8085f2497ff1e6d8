"""The web console at /ui (static files, no build step) and GET /workers, which its workers page reads."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from gateway.api import keys
from gateway.api.console import ASSETS, STATIC
from gateway.api.http import json_response, static_file

routes = web.RouteTableDef()


@routes.get("/ui")
async def console_page(request: web.Request) -> web.Response:
    """The console's one page (its assets are linked by absolute paths, so /ui and /ui/ both work)."""
    return web.Response(
        body=(STATIC / "index.html").read_bytes(), content_type="text/html", headers={"Cache-Control": "no-cache"}
    )


routes.get("/ui/")(console_page)


@routes.get("/ui/static/{file}")
async def console_asset(request: web.Request) -> web.Response:
    return static_file(request, STATIC, ASSETS, "/ui")


def worker_rows(app: web.Application) -> tuple[list[dict[str, Any]], int]:
    """Every live worker (id, host, pid, models, backend, device, precision, capacity, inflight) and the queue depth."""
    view = app[keys.WORKERS]
    return [dataclasses.asdict(w) for w in view.workers()], view.queued_texts()


@routes.get("/workers")
async def list_workers(request: web.Request) -> web.Response:
    """Connected workers, for the console's workers page."""
    rows, depth = worker_rows(request.app)
    return json_response({"workers": rows, "queue_depth": depth})
