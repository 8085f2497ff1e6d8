"""The web console at /ui (static files, no build step) and GET /workers, which its workers page reads."""

from __future__ import annotations

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
    """Every live worker (id, host, pid, models, backend, device, precision, capacity, inflight) and the queue depth.

    The one place that reads the dispatcher's registry for the console.
    """
    broker = app[keys.BROKER]
    rows: list[dict[str, Any]] = []
    for state in broker.registry.workers.values():
        ready = state.ready
        rows.append(
            {
                "worker_id": ready.worker_id,
                "host": ready.host,
                "pid": ready.pid,
                "models": [m.name for m in ready.models],
                "backend": ", ".join(sorted({m.backend for m in ready.models if m.backend})),
                "device": ready.device,
                "precision": ", ".join(sorted({m.precision for m in ready.models if m.precision})),
                "capacity": ready.capacity,
                "inflight": len(state.inflight),
            }
        )
    rows.sort(key=lambda r: str(r["worker_id"]))
    return rows, broker.batcher.queued_texts


@routes.get("/workers")
async def list_workers(request: web.Request) -> web.Response:
    """Connected workers, for the console's workers page."""
    rows, depth = worker_rows(request.app)
    return json_response({"workers": rows, "queue_depth": depth})
