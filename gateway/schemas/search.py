"""POST /collections/{collection}/search: one query or a batch (into `SearchQuery`s) and their results."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gateway.collection_inputs import SearchQuery
from gateway.errors import InvalidInput
from gateway.schemas.common import Text, Vector, choices, float32_rows
from gateway.storage.errors import InvalidFilter
from gateway.storage.filters import compile_filter

MAX_K = 1000
MAX_QUERIES = 100  # searches in one batch
DEFAULT_INCLUDE = frozenset(("text", "metadata"))
Include = Annotated[Literal["text", "metadata", "vector"], choices("text", "metadata", "vector")]


class SearchItem(msgspec.Struct, forbid_unknown_fields=True):
    """One search: exactly one of `query` (a text to embed) and `vector`."""

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

    def to_query(self, where: str = "") -> SearchQuery:
        """The collection service's input, with the filter compiled; `where` prefixes a batch member's errors."""
        if (self.query is None) == (self.vector is None):
            raise InvalidInput(
                (f"{where.rstrip('.')}: " if where else "")
                + "give either query (a text to embed) or vector (numbers), "
                + ("not both" if self.query is not None else "got neither"),
                param="query",
            )
        vector = None if self.vector is None else float32_rows([self.vector], [f"{where}vector"])[0]
        try:
            flt = compile_filter(self.filter)
        except InvalidFilter as exc:
            if not where:
                raise
            raise InvalidFilter(where + exc.message, param=exc.param) from None
        return SearchQuery(
            text=self.query,
            vector=vector,
            k=self.k,
            flt=flt,
            include=DEFAULT_INCLUDE if self.include is None else frozenset(self.include),
        )


class SearchBody(SearchItem, forbid_unknown_fields=True):
    """One search (`query` or `vector`), or a batch of them in `queries`, each with its own k, filter and include."""

    queries: (
        Annotated[
            list[SearchItem],
            msgspec.Meta(
                min_length=1,
                max_length=MAX_QUERIES,
                description=f"up to {MAX_QUERIES} searches answered in order; their texts are embedded together",
                extra={"noun": "search"},
            ),
        ]
        | None
    ) = None

    def to_queries(self) -> list[SearchQuery]:
        """A batch's searches in order; refuses a batch mixed with a single search's fields."""
        assert self.queries is not None
        alone = [name for name in ("query", "vector", "filter", "include") if getattr(self, name) is not None]
        if alone:
            raise InvalidInput(
                f"give either queries (a batch, each member with its own query or vector, k, filter and include) "
                f"or a single search, not both: found {', '.join(alone)} beside queries",
                param="queries",
            )
        return [q.to_query(f"queries[{i}].") for i, q in enumerate(self.queries)]


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


class BatchSearchResponse(msgspec.Struct, forbid_unknown_fields=True):  # disjoint from SearchResponse for oneOf
    results: Annotated[list[list[Hit]], msgspec.Meta(description="one list of hits per member of queries, in order")]
    took_ms: float
