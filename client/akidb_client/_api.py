"""The API as data: each call is a `Call` (method, path, body, how to read the answer).

Both clients send these through their own transport, so request shapes and response parsing are
written once, here, and the sync and async clients differ only in how they wait.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import numpy as np

from akidb_client.types import (
    BatchSearchResult,
    Collection,
    Doc,
    Document,
    Embeddings,
    Health,
    Inserted,
    Model,
    Page,
    Reranking,
    SearchResult,
    Snapshot,
)

T = TypeVar("T")
DocLike = Doc | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request and the parser of its JSON answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, str | int] | None = None
    idempotent: bool = True  # may be sent twice with the same effect (then 502/504/resets are retried)


def _seg(value: str) -> str:
    """A collection name or document id as one path segment (ids may hold spaces, '?', '#', '%')."""
    return quote(value, safe="")


def _col(collection: str) -> str:
    return f"/collections/{_seg(collection)}"


def to_doc(item: DocLike) -> Doc:
    """A `Doc` from a `Doc` or a mapping with id/text/vector/metadata."""
    if isinstance(item, Doc):
        return item
    unknown = set(item) - {"id", "text", "vector", "metadata"}
    if unknown:
        raise ValueError(f"a document has id, text, vector and metadata; not {sorted(unknown)}")
    return Doc(text=item.get("text"), id=item.get("id"), vector=item.get("vector"), metadata=item.get("metadata"))


def _vector(value: Any) -> list[float]:
    return np.asarray(value, dtype=np.float32).ravel().tolist() if isinstance(value, np.ndarray) else list(value)


# --- embeddings, models, health


def embed(texts: str | Sequence[str], model: str | None = None, **options: Any) -> Call[Embeddings]:
    """POST /embed; `options`: pooling, normalize, truncate (and any later field, passed through)."""
    body: dict[str, Any] = {"texts": [texts] if isinstance(texts, str) else list(texts), **options}
    if model is not None:
        body["model"] = model
    return Call("POST", "/embed", Embeddings.from_json, json=body)


def rerank(
    query: str,
    documents: Sequence[str],
    top_n: int | None = None,
    model: str | None = None,
    return_documents: bool = False,
) -> Call[Reranking]:
    """POST /v1/rerank (Cohere's and Jina's shape): the documents by relevance to the query, best first."""
    if isinstance(documents, str):
        raise TypeError("documents is a list of texts, not one string")  # else each character is a document
    body: dict[str, Any] = {"query": query, "documents": list(documents), "return_documents": return_documents}
    if top_n is not None:
        body["top_n"] = top_n
    if model is not None:
        body["model"] = model
    return Call("POST", "/v1/rerank", Reranking.from_json, json=body)


def models() -> Call[list[Model]]:
    """GET /models."""
    return Call("GET", "/models", lambda b: [Model.from_json(m) for m in b["models"]])


def health() -> Call[Health]:
    """GET /health."""
    return Call("GET", "/health", lambda b: Health(b["status"], int(b.get("workers", 0))))


# --- collections


def create_collection(name: str, **options: Any) -> Call[Collection]:
    """POST /collections; options: dimension, metric, model, pooling, normalize, index (None: server default)."""
    body = {"name": name, **{k: v for k, v in options.items() if v is not None}}
    return Call("POST", "/collections", Collection.from_json, json=body, idempotent=False)


def get_collection(collection: str) -> Call[Collection]:
    """GET /collections/{collection} (by name or id)."""
    return Call("GET", _col(collection), Collection.from_json)


def list_collections() -> Call[list[Collection]]:
    """GET /collections."""
    return Call("GET", "/collections", lambda b: [Collection.from_json(c) for c in b["collections"]])


def delete_collection(collection: str) -> Call[str]:
    """DELETE /collections/{collection}: the deleted collection's id."""
    return Call("DELETE", _col(collection), lambda b: str(b["id"]))


# --- snapshots (the file transfers are the clients' own: they stream, they are not JSON calls)

SNAPSHOT_TYPE = "application/octet-stream"


def create_snapshot(collection: str) -> Call[Snapshot]:
    """POST /collections/{collection}/snapshots (not retried: a resend would make a second snapshot)."""
    return Call("POST", f"{_col(collection)}/snapshots", Snapshot.from_json, idempotent=False)


def list_snapshots(collection: str) -> Call[list[Snapshot]]:
    """GET /collections/{collection}/snapshots, oldest first."""
    return Call("GET", f"{_col(collection)}/snapshots", lambda b: [Snapshot.from_json(s) for s in b["snapshots"]])


def delete_snapshot(collection: str, name: str) -> Call[None]:
    """DELETE /collections/{collection}/snapshots/{name}."""
    return Call("DELETE", snapshot_path(collection, name), lambda b: None)


def snapshot_path(collection: str, name: str) -> str:
    """The URL path of one stored snapshot (GET downloads it)."""
    return f"{_col(collection)}/snapshots/{_seg(name)}"


# --- documents


def insert(collection: str, docs: Iterable[DocLike], *, require_ids: bool = False) -> Call[list[Inserted]]:
    """POST /collections/{c}/documents as a batch. Idempotent when every document has an id."""
    wire = [to_doc(d).to_json() for d in docs]
    if not wire:
        raise ValueError("no documents to store")
    with_ids = all("id" in d for d in wire)
    if require_ids and not with_ids:
        raise ValueError("upsert needs an id on every document (add() generates missing ones)")
    return Call(
        "POST",
        f"{_col(collection)}/documents",
        lambda b: [Inserted(d["id"], bool(d["vector_generated"])) for d in b["documents"]],
        json={"documents": wire},
        idempotent=with_ids,
    )


def get_document(collection: str, doc_id: str, include_vector: bool = False) -> Call[Document]:
    """GET /collections/{c}/documents/{id}."""
    params = {"include_vector": "true"} if include_vector else None
    return Call("GET", f"{_col(collection)}/documents/{_seg(doc_id)}", Document.from_json, params=params)


def list_documents(
    collection: str, limit: int = 100, after: str | None = None, include_vector: bool = False
) -> Call[Page]:
    """GET /collections/{c}/documents: one page, in insertion order."""
    params: dict[str, str | int] = {"limit": limit}
    if after is not None:
        params["after"] = after
    if include_vector:
        params["include_vector"] = "true"
    return Call("GET", f"{_col(collection)}/documents", Page.from_json, params=params)


def delete_document(collection: str, doc_id: str) -> Call[str]:
    """DELETE /collections/{c}/documents/{id}."""
    return Call("DELETE", f"{_col(collection)}/documents/{_seg(doc_id)}", lambda b: str(b["id"]))


def count(collection: str) -> Call[int]:
    """The collection's document count (its description's `document_count`)."""
    return Call("GET", _col(collection), lambda b: int(b["document_count"]))


RerankOption = bool | str | Mapping[str, Any] | None


def rerank_option(value: RerankOption) -> Any:
    """The wire form of search's `rerank`: True (the default reranker), a model name, or {model, candidates}."""
    if value is None or value is False:
        return None
    if value is True:
        return True
    if isinstance(value, str):
        return {"model": value}
    unknown = set(value) - {"model", "candidates"}
    if unknown:
        raise ValueError(f"rerank takes model and candidates; not {sorted(unknown)}")
    return dict(value)


def search_body(
    query: str | None = None,
    *,
    vector: Any = None,
    k: int = 10,
    filter: Mapping[str, Any] | None = None,
    include: Sequence[str] | None = None,
    rerank: RerankOption = None,
    **extra: Any,
) -> dict[str, Any]:
    """One search's JSON: by text (`query`) or `vector`; `extra` fields (mode, alpha, ...) are passed through."""
    if (query is None) == (vector is None):
        raise ValueError("give either query (a text) or vector, not both or neither")
    body: dict[str, Any] = {"k": k, **extra}
    if query is not None:
        body["query"] = query
    else:
        body["vector"] = _vector(vector)
    if filter is not None:
        body["filter"] = dict(filter)
    if include is not None:
        body["include"] = list(include)
    wire = rerank_option(rerank)
    if wire is not None:
        body["rerank"] = wire
    return body


def search(collection: str, query: str | None = None, **options: Any) -> Call[SearchResult]:
    """POST /collections/{c}/search: one search (options as `search_body`'s)."""
    return Call("POST", f"{_col(collection)}/search", SearchResult.from_json, json=search_body(query, **options))


def search_many(collection: str, queries: Iterable[Mapping[str, Any]]) -> Call[BatchSearchResult]:
    """POST /collections/{c}/search with `queries`: each a mapping of `search_body`'s arguments."""
    members = [search_body(**q) for q in queries]
    if not members:
        raise ValueError("no queries to search")
    return Call("POST", f"{_col(collection)}/search", BatchSearchResult.from_json, json={"queries": members})
