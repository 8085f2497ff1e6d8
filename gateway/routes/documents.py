"""/collections/{collection}/documents: insert (one or a batch), list, get and delete documents."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from gateway import keys
from gateway.collection_inputs import DocumentInput
from gateway.errors import InvalidInput
from gateway.http import json_response, read_json
from gateway.storage.db import StoredDocument
from gateway.validation import (
    json_type,
    optional_object,
    optional_text,
    query_bool,
    query_int,
    record_id,
    reject_unknown,
    require_object,
    vector_value,
)

FIELDS = ("id", "text", "vector", "metadata")
MAX_PAGE = 1000

routes = web.RouteTableDef()


def parse_documents(body: object, limit: int) -> tuple[list[DocumentInput], bool]:
    """One document or `{"documents": [...]}`; returns the documents and whether it was a batch."""
    obj = require_object(body)
    if "documents" not in obj:
        return [parse_document(obj, "")], False
    reject_unknown(obj, ("documents",))
    items = obj["documents"]
    if not isinstance(items, list) or not items:
        raise InvalidInput(f"documents must be a non-empty array, got {json_type(items)}", param="documents")
    if len(items) > limit:
        raise InvalidInput(
            f"documents holds {len(items)}, over the limit of {limit} per request (storage.max_documents_per_request)",
            param="documents",
        )
    docs = [parse_document(item, f"documents[{i}].") for i, item in enumerate(items)]
    ids = [d.doc_id for d in docs if d.doc_id is not None]
    if len(ids) != len(set(ids)):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidInput(f"documents holds id {dup!r} more than once; one request stores each id once", param="id")
    return docs, True


def parse_document(item: Any, where: str) -> DocumentInput:
    """One document object; `where` prefixes field names in errors (e.g. "documents[3].")."""
    obj = require_object(item, where.rstrip(".") or "request body")
    reject_unknown(obj, FIELDS, what=where.rstrip(".") or "request body")
    try:
        doc = DocumentInput(
            doc_id=None if obj.get("id") is None else record_id(obj["id"], "id"),
            text=optional_text(obj, "text"),
            vector=None if obj.get("vector") is None else vector_value(obj["vector"], "vector"),
            metadata=optional_object(obj, "metadata"),
        )
    except InvalidInput as exc:
        raise InvalidInput(where + exc.message, param=exc.param) from None
    if doc.text is None and doc.vector is None:
        raise InvalidInput(f"{where or 'a document '}needs text (to embed) or a vector", param="text")
    return doc


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
    body = await read_json(request)
    # A batch of 1,000 vectors takes ~0.1 s to check: off the event loop, like all heavy work.
    docs, batch = await asyncio.to_thread(parse_documents, body, limit)
    results = await request.app[keys.COLLECTIONS].insert(request.match_info["collection"], docs)
    return json_response({"documents": results} if batch else results[0], status=201)


@routes.get("/collections/{collection}/documents")
async def list_documents(request: web.Request) -> web.Response:
    q = request.query
    limit = query_int(q, "limit", 100, 1, MAX_PAGE)
    after = query_int(q, "after", 0, 0, 2**63 - 1)
    with_vector = query_bool(q, "include_vector", False)
    page, total = await request.app[keys.COLLECTIONS].list_documents(
        request.match_info["collection"], after, limit, with_vector
    )
    docs = [{**render(d), "vector_generated": d.generated} for d in page]
    cursor = str(page[-1].key) if len(page) == limit else None
    return json_response({"documents": docs, "total": total, "next": cursor})


@routes.get("/collections/{collection}/documents/{doc_id}")
async def get_document(request: web.Request) -> web.Response:
    with_vector = query_bool(request.query, "include_vector", False)
    doc = await request.app[keys.COLLECTIONS].get_document(
        request.match_info["collection"], request.match_info["doc_id"], with_vector
    )
    return json_response({**render(doc), "vector_generated": doc.generated})


@routes.delete("/collections/{collection}/documents/{doc_id}")
async def delete_document(request: web.Request) -> web.Response:
    doc_id = request.match_info["doc_id"]
    await request.app[keys.COLLECTIONS].delete_document(request.match_info["collection"], doc_id)
    return json_response({"id": doc_id, "deleted": True})
