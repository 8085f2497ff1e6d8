"""/collections/{collection}/documents: insert (one or a batch), list, get and delete documents."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from gateway.api import keys
from gateway.api.http import json_response, read_body
from gateway.api.schemas.common import decode, from_query
from gateway.api.schemas.documents import GetQuery, InsertBody, ListQuery
from gateway.services.collection_inputs import DocumentInput
from gateway.storage.engine import StoredDocument

routes = web.RouteTableDef()


def parse_insert(raw: bytes, limit: int) -> tuple[list[DocumentInput], bool]:
    """Decode and check an insert body: its documents, and whether it was a batch."""
    return decode(raw, InsertBody).to_inputs(limit)


def render(doc: StoredDocument, include: frozenset[str] = frozenset(("text", "metadata"))) -> dict[str, Any]:
    """A stored document as JSON, with only the fields asked for."""
    out: dict[str, Any] = {"id": doc.doc_id}
    if "text" in include:
        out["text"] = doc.text
    if "metadata" in include:
        out["metadata"] = None if doc.metadata is None else orjson.loads(doc.metadata)
    if doc.vector is not None:  # fetched only when asked for
        out["vector"] = np.frombuffer(doc.vector, dtype=np.float32)
    return out


@routes.post("/collections/{collection}/documents")
async def insert_documents(request: web.Request) -> web.Response:
    limit = request.app[keys.CONFIG].storage.max_documents_per_request
    raw = await read_body(request)
    # A batch of 1,000 vectors takes ~30 ms to decode and check: off the event loop, like all heavy work.
    docs, batch = await asyncio.to_thread(parse_insert, raw, limit)
    results = await request.app[keys.DOCUMENTS].insert(request.match_info["collection"], docs)
    return json_response({"documents": results} if batch else results[0], status=201)


@routes.get("/collections/{collection}/documents")
async def list_documents(request: web.Request) -> web.Response:
    q = from_query(request.query, ListQuery)
    page, total = await request.app[keys.DOCUMENTS].list(
        request.match_info["collection"], q.after, q.limit, q.include_vector
    )
    docs = [{**render(d), "vector_generated": d.generated} for d in page]
    cursor = str(page[-1].key) if len(page) == q.limit else None
    return json_response({"documents": docs, "total": total, "next": cursor})


@routes.get("/collections/{collection}/documents/{doc_id}")
async def get_document(request: web.Request) -> web.Response:
    q = from_query(request.query, GetQuery)
    doc = await request.app[keys.DOCUMENTS].get(
        request.match_info["collection"], request.match_info["doc_id"], q.include_vector
    )
    return json_response({**render(doc), "vector_generated": doc.generated})


@routes.delete("/collections/{collection}/documents/{doc_id}")
async def delete_document(request: web.Request) -> web.Response:
    doc_id = request.match_info["doc_id"]
    await request.app[keys.DOCUMENTS].delete(request.match_info["collection"], doc_id)
    return json_response({"id": doc_id, "deleted": True})
