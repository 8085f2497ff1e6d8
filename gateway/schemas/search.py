"""POST /collections/{collection}/search: the query (into `SearchQuery`) and its results."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gateway.collection_inputs import SearchQuery
from gateway.errors import InvalidInput
from gateway.schemas.common import Text, Vector, choices, float32_rows
from gateway.storage.filters import compile_filter

MAX_K = 1000
DEFAULT_INCLUDE = frozenset(("text", "metadata"))
Include = Annotated[Literal["text", "metadata", "vector"], choices("text", "metadata", "vector")]


class SearchBody(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of `query` (a text to embed) and `vector`."""

    query: Text | None = None
    vector: Vector | None = None
    k: Annotated[int, msgspec.Meta(ge=1, le=MAX_K)] = 10
    # Any: the filter language (gateway/storage/filters.py) checks it and names its own errors.
    filter: Annotated[
        Any,
        msgspec.Meta(
            description='metadata filter, e.g. {"genre": "sci-fi", "year": {"$gte": 2000}}',
            extra_json_schema={"type": ["object", "null"]},
        ),
    ] = None
    include: Annotated[list[Include], msgspec.Meta(description="default: text and metadata")] | None = None

    def to_query(self) -> SearchQuery:
        """The collection service's input, with the filter compiled."""
        if (self.query is None) == (self.vector is None):
            raise InvalidInput(
                "give either query (a text to embed) or vector (numbers), "
                + ("not both" if self.query is not None else "got neither"),
                param="query",
            )
        vector = None if self.vector is None else float32_rows([self.vector], ["vector"])[0]
        return SearchQuery(
            text=self.query,
            vector=vector,
            k=self.k,
            flt=compile_filter(self.filter),
            include=DEFAULT_INCLUDE if self.include is None else frozenset(self.include),
        )


class Hit(msgspec.Struct):
    id: str
    score: Annotated[float, msgspec.Meta(description="cosine/ip: similarity (higher is nearer); l2: distance")]
    text: str | None = None
    metadata: dict[str, Any] | None = None
    vector: list[float] | None = None


class SearchResponse(msgspec.Struct):
    results: list[Hit]
    query_embedded: bool
    took_ms: float
