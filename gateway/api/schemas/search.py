"""POST /collections/{collection}/search: one query or a batch (into `SearchQuery`s) and their results."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec

from gateway.api.schemas.common import Text, Vector, choices, float32_rows, given
from gateway.errors import InvalidInput
from gateway.services.collection_inputs import RerankStep, SearchQuery
from gateway.storage.errors import InvalidFilter
from gateway.storage.filters import parse_filter

MAX_K = 1000
MAX_QUERIES = 100  # searches in one batch
DEFAULT_INCLUDE = frozenset(("text", "metadata"))
Include = Annotated[Literal["text", "metadata", "vector", "ranks"], choices("text", "metadata", "vector", "ranks")]
Mode = Annotated[
    Literal["dense", "keyword", "hybrid"],
    choices("dense", "keyword", "hybrid"),
    msgspec.Meta(description="dense: nearest vectors; keyword: BM25 over the texts; hybrid: both, fused by RRF"),
]
KeywordSyntax = Annotated[
    Literal["plain", "fts5"],
    choices("plain", "fts5"),
    msgspec.Meta(description="plain: the query's words, any characters; fts5: SQLite FTS5 query syntax"),
]
Alpha = Annotated[
    float, msgspec.Meta(ge=0, le=1, description="hybrid: weight of the dense ranking (keyword: 1 - alpha); default 0.5")
]
TEXT_MODES = ("keyword", "hybrid")
DEFAULT_CANDIDATES = 50  # a search's rerank reads this many candidates unless it says (and at least k)


class RerankOption(msgspec.Struct, forbid_unknown_fields=True):
    """Rerank a search's candidates against its text with a reranker (cross-encoder)."""

    model: Annotated[
        str | None, msgspec.Meta(description="a served reranker or alias; default: rerank.default_model")
    ] = None
    candidates: (
        Annotated[
            int,
            msgspec.Meta(
                ge=1,
                le=MAX_K,
                description="documents retrieved by the search's mode and reranked (fewer than k: at most that "
                f"many hits); default {DEFAULT_CANDIDATES}, or k if larger",
            ),
        ]
        | None
    ) = None


Rerank = Annotated[
    bool | RerankOption,
    msgspec.Meta(
        description="retrieve candidates, rerank them against the query's text, return the best k (`score`: the "
        'reranker\'s; with include "ranks", `retrieval_score` too); true: the default reranker and candidates'
    ),
]
NULL = {"type": "null"}
# What `to_query` and `_check_mode` check, stated in the published schema (gateway/api/openapi.py merges
# it in), each rule an `anyOf` of disjoint cases so a generator (schemathesis) can pick one and fill it.
ITEM_RULES: list[dict[str, Any]] = [
    # exactly one of query and vector
    {
        "anyOf": [
            {"required": ["query"], "properties": {"query": {"type": "string"}, "vector": NULL}},
            {"required": ["vector"], "properties": {"vector": {"type": "array"}, "query": NULL}},
        ]
    },
    # keyword and hybrid search text
    {"anyOf": [{"properties": {"mode": {"const": "dense"}}}, given("query", {"type": "string"})]},
    # alpha weighs a hybrid search's two rankings
    {"anyOf": [{"properties": {"alpha": NULL}}, given("mode", {"const": "hybrid"})]},
    # keyword_syntax reads the text of keyword and hybrid searches
    {"anyOf": [{"properties": {"keyword_syntax": {"const": "plain"}}}, given("mode", {"enum": list(TEXT_MODES)})]},
    # a rerank reads the query's text
    {"anyOf": [{"properties": {"rerank": {"anyOf": [NULL, {"const": False}]}}}, given("query", {"type": "string"})]},
]


class SearchItem(msgspec.Struct, forbid_unknown_fields=True):
    """One search: exactly one of `query` (a text to embed) and `vector`."""

    SCHEMA_RULES: ClassVar[dict[str, Any]] = {"allOf": ITEM_RULES}

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
    mode: Mode = "dense"
    alpha: Alpha | None = None
    keyword_syntax: KeywordSyntax = "plain"
    rerank: Rerank | None = None

    def to_query(self, where: str = "") -> SearchQuery:
        """The collection service's input, the filter parsed into its tree; `where` prefixes a batch member's errors."""
        if (self.query is None) == (self.vector is None):
            raise InvalidInput(
                (f"{where.rstrip('.')}: " if where else "")
                + "give either query (a text to embed) or vector (numbers), "
                + ("not both" if self.query is not None else "got neither"),
                param="query",
            )
        self._check_mode(where)
        vector = None if self.vector is None else float32_rows([self.vector], [f"{where}vector"])[0]
        try:
            flt = parse_filter(self.filter)
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
            mode=self.mode,
            alpha=0.5 if self.alpha is None else self.alpha,
            keyword_syntax=self.keyword_syntax,
            rerank=self._rerank_step(where),
        )

    def _rerank_step(self, where: str) -> RerankStep | None:
        """The rerank option as the service's step (None: no rerank); it needs the query's text."""
        if self.rerank is None or self.rerank is False:
            return None
        option = RerankOption() if self.rerank is True else self.rerank
        prefix = f"{where.rstrip('.')}: " if where else ""
        if self.query is None:
            raise InvalidInput(
                f"{prefix}rerank scores the documents against the query's text: give query (a text), not a vector",
                param="rerank",
            )
        # Fewer candidates than k is allowed (and answers at most `candidates` hits), so every schema-valid
        # pair of numbers is a valid search.
        candidates = max(DEFAULT_CANDIDATES, self.k) if option.candidates is None else option.candidates
        return RerankStep(option.model, candidates)

    def _check_mode(self, where: str) -> None:
        """Keyword and hybrid searches need text; alpha and keyword_syntax belong to the modes that use them."""
        prefix = f"{where.rstrip('.')}: " if where else ""
        if self.mode in TEXT_MODES and self.query is None:
            raise InvalidInput(
                f"{prefix}mode {self.mode} searches the documents' text: give query (a text), not only a vector",
                param="query",
            )
        if self.alpha is not None and self.mode != "hybrid":
            raise InvalidInput(
                f"{prefix}alpha weighs the two rankings of a hybrid search; give mode hybrid or leave alpha out",
                param="alpha",
            )
        if self.keyword_syntax != "plain" and self.mode not in TEXT_MODES:
            raise InvalidInput(
                f"{prefix}keyword_syntax applies to modes keyword and hybrid; give one or leave keyword_syntax out",
                param="keyword_syntax",
            )


class SearchBody(SearchItem, forbid_unknown_fields=True):
    """One search (`query` or `vector`), or a batch of them in `queries`, each with its own k, filter and include."""

    # A batch leaves the single search's fields out (`to_queries`); a single search follows ITEM_RULES.
    SCHEMA_RULES: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {
                "required": ["queries"],
                "properties": {
                    "queries": {"type": "array"},
                    **dict.fromkeys(("query", "vector", "filter", "include", "alpha", "rerank"), NULL),
                    "mode": {"const": "dense"},
                    "keyword_syntax": {"const": "plain"},
                },
            },
            {"properties": {"queries": NULL}, "allOf": ITEM_RULES},
        ]
    }

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
        singles = ("query", "vector", "filter", "include", "alpha", "rerank")
        alone = [name for name in singles if getattr(self, name) is not None]
        alone += [
            name for name, plain in (("mode", "dense"), ("keyword_syntax", "plain")) if getattr(self, name) != plain
        ]
        if alone:
            raise InvalidInput(
                f"give either queries (a batch, each member with its own query or vector, k, filter and include) "
                f"or a single search, not both: found {', '.join(alone)} beside queries",
                param="queries",
            )
        return [q.to_query(f"queries[{i}].") for i, q in enumerate(self.queries)]


class Hit(msgspec.Struct):
    id: str
    score: Annotated[
        float,
        msgspec.Meta(
            description="dense: cosine/ip similarity (higher is nearer), l2 distance; keyword: BM25 (higher is "
            "better); hybrid: the reciprocal rank fusion score (higher is better); reranked: the reranker's"
        ),
    ]
    text: str | None = None
    metadata: dict[str, Any] | None = None
    vector: list[float] | None = None
    ranks: (
        Annotated[
            dict[str, int],
            msgspec.Meta(
                description='with include "ranks": the lists it came from and its rank in each (from 1); '
                'reranked: "rerank" too'
            ),
        ]
        | None
    ) = None
    retrieval_score: (
        Annotated[
            float,
            msgspec.Meta(
                description='reranked, with include "ranks": the score the retrieval gave (`score`: the reranker\'s)'
            ),
        ]
        | None
    ) = None


class SearchResponse(msgspec.Struct):
    results: list[Hit]
    query_embedded: bool
    took_ms: float


class BatchSearchResponse(msgspec.Struct, forbid_unknown_fields=True):  # disjoint from SearchResponse for oneOf
    results: Annotated[list[list[Hit]], msgspec.Meta(description="one list of hits per member of queries, in order")]
    took_ms: float
