"""POST /collections/{collection}/search: nearest documents to a text or a vector."""

from __future__ import annotations

import time

from aiohttp import web

from gateway import keys
from gateway.collection_inputs import INCLUDE_FIELDS, SearchQuery
from gateway.errors import InvalidInput
from gateway.http import json_response, read_json
from gateway.routes.documents import render
from gateway.storage.filters import compile_filter
from gateway.validation import json_type, optional_int, optional_text, reject_unknown, require_object, vector_value

FIELDS = ("query", "vector", "k", "filter", "include")
DEFAULT_INCLUDE = frozenset(("text", "metadata"))
MAX_K = 1000

routes = web.RouteTableDef()


def parse_search(body: object) -> SearchQuery:
    """Validate a search body: exactly one of query (text) and vector."""
    obj = require_object(body)
    reject_unknown(obj, FIELDS)
    text = optional_text(obj, "query")
    vector = None if obj.get("vector") is None else vector_value(obj["vector"], "vector")
    if (text is None) == (vector is None):
        raise InvalidInput(
            "give either query (a text to embed) or vector (numbers), "
            + ("not both" if text is not None else "got neither"),
            param="query",
        )
    return SearchQuery(
        text=text,
        vector=vector,
        k=optional_int(obj, "k", 10, 1, MAX_K),
        flt=compile_filter(obj.get("filter")),
        include=_include(obj.get("include")),
    )


def _include(value: object) -> frozenset[str]:
    if value is None:
        return DEFAULT_INCLUDE
    if not isinstance(value, list) or any(not isinstance(v, str) or v not in INCLUDE_FIELDS for v in value):
        raise InvalidInput(
            f"include must be an array of {', '.join(INCLUDE_FIELDS)}, got {json_type(value)} {value!r}",
            param="include",
        )
    return frozenset(value)


@routes.post("/collections/{collection}/search")
async def search(request: web.Request) -> web.Response:
    started = time.perf_counter()
    q = parse_search(await read_json(request))
    hits, embedded = await request.app[keys.COLLECTIONS].search(request.match_info["collection"], q)
    results = [{"id": h.doc.doc_id, "score": h.score, **render(h.doc, q.include)} for h in hits]
    took_ms = round((time.perf_counter() - started) * 1000, 3)
    return json_response({"results": results, "query_embedded": embedded, "took_ms": took_ms})
