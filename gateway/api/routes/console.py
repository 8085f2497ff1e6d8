"""The web console at /ui (static files, no build step) and GET /workers, which its workers page reads."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway.api import keys
from gateway.api.console import ASSETS, STATIC
from gateway.api.http import static_file, struct_response
from gateway.api.schemas.system import WorkerList, WorkerRow

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


@routes.get("/workers")
async def list_workers(request: web.Request) -> web.Response:
    """Connected workers (id, host, pid, models, backend, device, precision, capacity, inflight), for the
    console's workers page, and the queue depth."""
    view = request.app[keys.WORKERS]
    rows = [msgspec.convert(w, WorkerRow, from_attributes=True) for w in view.workers()]
    return struct_response(WorkerList(workers=rows, queue_depth=view.queued_texts()))
