"""POST /collections/{collection}/search: nearest documents to a text or a vector."""

from __future__ import annotations

import time

from aiohttp import web

from gateway import keys
from gateway.http import json_response, read_as
from gateway.routes.documents import render
from gateway.schemas.search import SearchBody

routes = web.RouteTableDef()


@routes.post("/collections/{collection}/search")
async def search(request: web.Request) -> web.Response:
    started = time.perf_counter()
    q = (await read_as(request, SearchBody)).to_query()
    hits, embedded = await request.app[keys.COLLECTIONS].search(request.match_info["collection"], q)
    results = [{"id": h.doc.doc_id, "score": h.score, **render(h.doc, q.include)} for h in hits]
    took_ms = round((time.perf_counter() - started) * 1000, 3)
    return json_response({"results": results, "query_embedded": embedded, "took_ms": took_ms})
