"""/collections/{collection}/documents bodies: insert one or a batch (into `DocumentInput`s), list, get."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
import orjson

from gateway.api.schemas.common import Text, Vector, check_count, float32_rows, given
from gateway.errors import InvalidInput
from gateway.services.collection_inputs import DocumentInput

DocId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=256,
        pattern=r"^[^/\x00-\x1f\x7f]*$",
        extra={"rule": "1 to 256 characters without '/' (ids go in URLs) or control characters"},
    ),
]
MAX_PAGE = 1000


class DocumentBody(msgspec.Struct, forbid_unknown_fields=True):
    """One document: text (embedded by the collection's model), a vector, or both (the vector is kept)."""

    # What `_inputs` checks, stated in the published schema (gateway/api/openapi.py merges it in).
    SCHEMA_RULES: ClassVar[dict[str, Any]] = {
        "anyOf": [given("text", {"type": "string"}), given("vector", {"type": "array"})]
    }

    id: Annotated[DocId | None, msgspec.Meta(description="default: a random one")] = None
    text: Text | None = None
    vector: Vector | None = None
    metadata: dict[str, Any] | None = None


class DocumentBatch(msgspec.Struct, forbid_unknown_fields=True):
    documents: Annotated[list[DocumentBody], msgspec.Meta(min_length=1, extra={"noun": "document"})]


class InsertBody(msgspec.Struct, forbid_unknown_fields=True):
    """What POST .../documents decodes in one pass: a `DocumentBody` or a `DocumentBatch` (the schema says so)."""

    documents: Annotated[list[DocumentBody], msgspec.Meta(min_length=1, extra={"noun": "document"})] | None = None
    id: DocId | None = None
    text: Text | None = None
    vector: Vector | None = None
    metadata: dict[str, Any] | None = None

    def to_inputs(self, limit: int) -> tuple[list[DocumentInput], bool]:
        """The documents as the collection service takes them, and whether the body was a batch."""
        if self.documents is None:
            one = DocumentBody(self.id, self.text, self.vector, self.metadata)
            return _inputs([one], lambda _: ""), False
        given = [f for f in ("id", "text", "vector", "metadata") if getattr(self, f) is not None]
        if given:
            raise InvalidInput(
                f"request body has unknown field(s) {', '.join(given)}; allowed: documents", param=given[0]
            )
        check_count(self.documents, "documents", limit, "storage.max_documents_per_request")
        docs = _inputs(self.documents, lambda i: f"documents[{i}].")
        ids = [d.doc_id for d in docs if d.doc_id is not None]
        if len(ids) != len(set(ids)):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InvalidInput(
                f"documents holds id {dup!r} more than once; one request stores each id once", param="id"
            )
        return docs, True


def _inputs(bodies: list[DocumentBody], where: Any) -> list[DocumentInput]:
    for i, b in enumerate(bodies):
        if b.text is None and b.vector is None:
            what = where(i).rstrip(".") or "a document"
            raise InvalidInput(f"{what} needs text (to embed) or a vector", param="text")
        if b.metadata is not None:
            _storable(b.metadata, where(i) + "metadata")
    with_vector = [i for i, b in enumerate(bodies) if b.vector is not None]
    rows = float32_rows([bodies[i].vector or [] for i in with_vector], [where(i) + "vector" for i in with_vector])
    vectors = dict(zip(with_vector, rows, strict=True))
    return [DocumentInput(b.id, b.text, vectors.get(i), b.metadata) for i, b in enumerate(bodies)]


def _storable(metadata: dict[str, Any], key: str) -> None:
    """Metadata is stored as JSON by orjson, which holds integers to 64 bits."""
    try:
        orjson.dumps(metadata)
    except TypeError:
        raise InvalidInput(f"{key} holds an integer beyond the 64-bit range", param="metadata") from None


class ListQuery(msgspec.Struct):
    """GET .../documents query parameters: a page of documents after a cursor."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)] = 100
    after: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1, description="the `next` of the previous page")] = 0
    include_vector: bool = False


class GetQuery(msgspec.Struct):
    include_vector: bool = False


class Inserted(msgspec.Struct):
    id: str
    vector_generated: bool


class InsertedBatch(msgspec.Struct):
    documents: list[Inserted]


class Document(msgspec.Struct):
    id: str
    text: str | None
    metadata: dict[str, Any] | None
    vector_generated: bool
    vector: Annotated[list[float], msgspec.Meta(description="only with include_vector=true")] | None = None


class DocumentPage(msgspec.Struct):
    documents: list[Document]
    total: int
    next: Annotated[str | None, msgspec.Meta(description="pass as `after` for the next page; null at the end")]
