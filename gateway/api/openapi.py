"""The OpenAPI 3.1 document, generated from the Structs in gateway/schemas and one table of operations.

Each operation lists every status it can answer; tests/integration/test_openapi_statuses.py produces
each of them, so the table cannot claim a status nobody sees (nor miss a route the app serves).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import inspect as mi

from gateway.api import console
from gateway.api.schemas import collections, documents, embed, openai, reembed, rerank, search, snapshots, system
from gateway.api.schemas.common import ErrorBody

# Statuses every route that reads a JSON body can answer before it looks at the body's content.
BODY = (400, 413, 415)
# And those of a route that waits for a worker.
EMBEDS = (404, 502, 503, 504)
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted: the job runs in the background",
    400: "Invalid input: the message names the field",
    404: "Not found",
    409: "Valid, but refused in the current state: a name in use, a model no worker serves, a job already running "
    "or ended",
    413: "Request body over server.max_body_bytes (a restore: storage.max_restore_bytes)",
    415: "Content-Type is not the route's (application/json; a restore: application/octet-stream)",
    502: "A worker failed the job",
    503: "No worker, queue full or not ready; see Retry-After",
    504: "No worker finished in time",
}


# The files /docs/{file} serves, from the swagger-ui-bundle package (nothing from a CDN: deployments may
# be offline), and their media types.
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
ASSET_TYPES = tuple(dict.fromkeys(ASSETS.values()))
SNAPSHOT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class Operation:
    """One route: what it takes and every status it answers (the first is its success)."""

    summary: str
    ok: Any  # the success body's type; or media types (a tuple of str) whose body is not JSON we declare
    statuses: tuple[int, ...] = ()
    body: tuple[Any, ...] = ()  # request body types (one of them)
    query: Any = None  # a Struct whose fields are the query parameters
    upload: str | None = None  # the media type of a request body that is a file, not JSON
    created: bool = False
    accepted: bool = False  # 202: work started in the background
    tags: tuple[str, ...] = field(default=())


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("get", "/health"): Operation("Liveness: the gateway answers", system.Health, tags=("system",)),
    ("get", "/ready"): Operation("Readiness: a worker for the default model", system.Ready, (503,), tags=("system",)),
    ("get", "/models"): Operation("Announced models and their live workers", system.ModelList, tags=("system",)),
    ("get", "/metrics"): Operation("Prometheus metrics", ("text/plain",), tags=("system",)),
    ("get", "/openapi.json"): Operation("This document", ("application/json",), tags=("system",)),
    ("get", "/docs"): Operation("This document, browsable (Swagger UI)", ("text/html",), tags=("system",)),
    ("get", "/docs/{file}"): Operation("Swagger UI's files", ASSET_TYPES, (404,), tags=("system",)),
    ("get", "/workers"): Operation("Live worker processes and the queue depth", system.WorkerList, tags=("system",)),
    ("get", "/ui"): Operation("The web console", ("text/html",), tags=("console",)),
    ("get", "/ui/"): Operation("The web console", ("text/html",), tags=("console",)),
    ("get", "/ui/static/{file}"): Operation("The console's files", console.ASSET_TYPES, (404,), tags=("console",)),
    ("post", "/embed"): Operation(
        "Embed texts", embed.EmbedResponse, (*BODY, *EMBEDS), (embed.EmbedBody,), tags=("embeddings",)
    ),
    ("post", "/v1/embeddings"): Operation(
        "Embed texts, OpenAI's API",
        openai.EmbeddingsResponse,
        (*BODY, *EMBEDS),
        (openai.EmbeddingsBody,),
        tags=("openai",),
    ),
    ("post", "/rerank"): Operation(
        "Rerank texts against a query (text-embeddings-inference's shape), best first",
        list[rerank.Rank],
        (*BODY, *EMBEDS),
        (rerank.RerankBody,),
        tags=("rerank",),
    ),
    ("post", "/v1/rerank"): Operation(
        "Rerank documents against a query (Cohere's and Jina's shape), best first",
        rerank.V1RerankResponse,
        (*BODY, *EMBEDS),
        (rerank.V1RerankBody,),
        tags=("rerank",),
    ),
    ("get", "/v1/models"): Operation("Served models, OpenAI's API", openai.ModelList, tags=("openai",)),
    ("get", "/v1/models/{model}"): Operation("One model, OpenAI's API", openai.Model, (404,), tags=("openai",)),
    ("post", "/collections"): Operation(
        "Create a collection",
        collections.CollectionInfo,
        (*BODY, 404, 409, 503),
        (collections.CollectionBody,),
        created=True,
        tags=("collections",),
    ),
    ("get", "/collections"): Operation("List collections", collections.CollectionList, tags=("collections",)),
    ("get", "/collections/{collection}"): Operation(
        "Describe a collection (by name or id)", collections.CollectionInfo, (404,), tags=("collections",)
    ),
    ("delete", "/collections/{collection}"): Operation(
        "Delete a collection and its documents", collections.Deleted, (404,), tags=("collections",)
    ),
    ("post", "/collections/{collection}/documents"): Operation(
        "Insert one document or a batch (all or nothing)",
        documents.Inserted,  # or InsertedBatch; see ALTERNATIVES
        (*BODY, *EMBEDS),
        (documents.DocumentBody, documents.DocumentBatch),
        created=True,
        tags=("documents",),
    ),
    ("get", "/collections/{collection}/documents"): Operation(
        "A page of documents", documents.DocumentPage, (400, 404), query=documents.ListQuery, tags=("documents",)
    ),
    ("get", "/collections/{collection}/documents/{doc_id}"): Operation(
        "One document", documents.Document, (400, 404), query=documents.GetQuery, tags=("documents",)
    ),
    ("delete", "/collections/{collection}/documents/{doc_id}"): Operation(
        "Delete a document", collections.Deleted, (404,), tags=("documents",)
    ),
    ("post", "/collections/{collection}/snapshots"): Operation(
        "Snapshot a collection into one file (it keeps serving meanwhile)",
        snapshots.SnapshotInfo,
        (404,),
        created=True,
        tags=("snapshots",),
    ),
    ("get", "/collections/{collection}/snapshots"): Operation(
        "List a collection's snapshots", snapshots.SnapshotList, (404,), tags=("snapshots",)
    ),
    ("get", "/collections/{collection}/snapshots/{name}"): Operation(
        "Download a snapshot file", (SNAPSHOT_TYPE,), (404,), tags=("snapshots",)
    ),
    ("delete", "/collections/{collection}/snapshots/{name}"): Operation(
        "Delete a snapshot", snapshots.SnapshotDeleted, (404,), tags=("snapshots",)
    ),
    ("post", "/collections/restore"): Operation(
        "Create a collection from an uploaded snapshot file (every checksum verified first)",
        collections.CollectionInfo,
        (400, 409, 413, 415),
        query=snapshots.RestoreQuery,
        upload=SNAPSHOT_TYPE,
        created=True,
        tags=("snapshots",),
    ),
    ("post", "/collections/{collection}/search"): Operation(
        "Nearest documents to a text or a vector (`mode` dense), best BM25 matches (keyword) or both fused "
        "(hybrid); or for each of a batch of them (`queries`)",
        search.SearchResponse,  # or BatchSearchResponse; see ALTERNATIVES
        (*BODY, *EMBEDS),
        (search.SearchBody,),
        tags=("search",),
    ),
    ("post", "/collections/{collection}/reembed"): Operation(
        "Re-embed every document with another model, then switch the collection to it (a background job)",
        reembed.Job,
        (*BODY, 404, 409, 503),
        (reembed.ReembedBody,),
        accepted=True,
        tags=("collections",),
    ),
    ("get", "/collections/{collection}/jobs/{job_id}"): Operation(
        "A re-embedding job's state and progress", reembed.Job, (404,), tags=("collections",)
    ),
    ("delete", "/collections/{collection}/jobs/{job_id}"): Operation(
        "Cancel a running re-embedding job; the collection stays as it was",
        reembed.Job,
        (404, 409),
        tags=("collections",),
    ),
}


# Success bodies that take a second shape for a batch request.
ALTERNATIVES: dict[Any, Any] = {
    documents.Inserted: documents.InsertedBatch,
    search.SearchResponse: search.BatchSearchResponse,
}


def document(version: str) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    types: list[Any] = [ErrorBody, openai.OpenAIError, *ALTERNATIVES.values()]
    for op in OPERATIONS.values():
        # Types, and generic aliases such as /rerank's list[Rank]; not media-type tuples, not a missing query.
        types += [t for t in (op.ok, *op.body, op.query) if t is not None and not isinstance(t, tuple)]
    types = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    for cls in _structs(mi.multi_type_info(types)):
        # Rules across fields (e.g. text or vector), which a Struct's field types cannot say.
        if rules := getattr(cls, "SCHEMA_RULES", None):
            components[cls.__name__].update(rules)
    ref = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in OPERATIONS.items():
        paths.setdefault(path, {})[method] = _operation(method, path, op, ref, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AkiDB",
            "version": version,
            "description": 'A vector database with built-in embeddings. Errors are `{"error": {"code", '
            '"message"}}` (OpenAI\'s shape under /v1/); `code` is stable, `message` names the field.',
        },
        "paths": paths,
        "components": {"schemas": components},
    }


def _operation(method: str, path: str, op: Operation, ref: dict[Any, Any], components: dict[str, Any]) -> Any:
    out: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(method, path), "tags": list(op.tags)}
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in re.findall(r"{(\w+)}", path)
    ]
    if op.query is not None:
        props = components[op.query.__name__]["properties"]
        fields = [(f.encode_name, f.required) for f in mi.type_info(op.query).fields]  # type: ignore[attr-defined]
        params += [{"name": name, "in": "query", "required": req, "schema": props[name]} for name, req in fields]
    if params:
        out["parameters"] = params
    if op.body:
        schema = ref[op.body[0]] if len(op.body) == 1 else {"oneOf": [ref[t] for t in op.body]}
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if op.upload:
        binary = {"schema": {"type": "string", "format": "binary"}}
        out["requestBody"] = {"required": True, "content": {op.upload: binary}}
    ok = 202 if op.accepted else 201 if op.created else 200
    if isinstance(op.ok, tuple):
        success: dict[str, Any] = {"content": {media: {"schema": {}} for media in op.ok}}
    else:
        schema = ref[op.ok]
        if op.ok in ALTERNATIVES:
            schema = {"oneOf": [ref[op.ok], ref[ALTERNATIVES[op.ok]]]}
        success = {"content": {"application/json": {"schema": schema}}}
    error = ref[openai.OpenAIError] if path.startswith("/v1/") else ref[ErrorBody]
    responses: dict[str, Any] = {str(ok): {"description": REASONS[ok], **success}}
    for status in op.statuses:
        responses[str(status)] = {"description": REASONS[status], "content": {"application/json": {"schema": error}}}
    out["responses"] = responses
    return out


def _structs(types: Any) -> set[type]:
    """Every Struct class reachable from these msgspec type infos."""
    found: set[type] = set()
    stack = list(types)
    while stack:
        t = stack.pop()
        if isinstance(t, mi.StructType):
            if t.cls in found:
                continue
            found.add(t.cls)
            stack += [f.type for f in t.fields]
        elif isinstance(t, mi.Metadata):
            stack.append(t.type)
        elif isinstance(t, mi.UnionType):
            stack += t.types
        elif isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
            stack.append(t.item_type)
        elif isinstance(t, mi.DictType):
            stack.append(t.value_type)
    return found


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[{}]", "", path).strip("/").replace("/", "_").replace(".", "_").replace("-", "_")
    return f"{method}_{words or 'root'}"
