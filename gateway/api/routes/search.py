"""POST /collections/{collection}/search: nearest documents to a text or a vector, or to each of a batch."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.api import keys
from gateway.api.http import json_response, read_as
from gateway.api.routes.documents import render
from gateway.api.schemas.search import SearchBody
from gateway.services.collection_inputs import SearchQuery
from gateway.storage.engine import Hit

routes = web.RouteTableDef()


@routes.post("/collections/{collection}/search")
async def search(request: web.Request) -> web.Response:
    started = time.perf_counter()
    body = await read_as(request, SearchBody)
    service = request.app[keys.SEARCH]
    ref = request.match_info["collection"]
    if body.queries is not None:
        queries = body.to_queries()
        batch = await service.search_many(ref, queries)
        results = [_hits(hits, q) for hits, q in zip(batch, queries, strict=True)]
        return json_response({"results": results, "took_ms": _since(started)})
    q = body.to_query()
    hits, embedded = await service.search(ref, q)
    return json_response({"results": _hits(hits, q), "query_embedded": embedded, "took_ms": _since(started)})


def _hits(hits: list[Hit], q: SearchQuery) -> list[dict[str, Any]]:
    out = [{"id": h.doc.doc_id, "score": h.score, **render(h.doc, q.include)} for h in hits]
    if "ranks" in q.include:  # a dense search's rank is its place in the list
        for i, (item, hit) in enumerate(zip(out, hits, strict=True), start=1):
            item["ranks"] = hit.ranks if hit.ranks is not None else {"dense": i}
            if hit.retrieval_score is not None:  # reranked: `score` is the reranker's
                item["retrieval_score"] = hit.retrieval_score
    return out


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
