"""POST /rerank (text-embeddings-inference's shape) and POST /v1/rerank (Cohere's and Jina's): requests,
their conversion into `RerankRequest`, and the responses. gRPC Rerank converts to the same request."""

from __future__ import annotations

from typing import Annotated

import msgspec

from gateway.api.schemas.common import Text, check_count
from gateway.services.rerank import RerankOutcome, RerankRequest

Query = Annotated[str, msgspec.Meta(min_length=1, description="what the documents are ranked against")]
Documents = Annotated[
    list[Text],
    msgspec.Meta(min_length=1, description="the documents to score against the query", extra={"noun": "text"}),
]
Model = Annotated[str | None, msgspec.Meta(description="a served reranker or alias; default: rerank.default_model")]
RawScores = Annotated[bool, msgspec.Meta(description="raw logits instead of the model's sigmoid (0..1)")]
Truncate = Annotated[
    bool | None,
    msgspec.Meta(description="cut each document so query + document fit the model's max_tokens (default true)"),
]

LIMIT_KNOB = "rerank.max_documents"


class RerankBody(msgspec.Struct, forbid_unknown_fields=True):
    """text-embeddings-inference's /rerank. null means the default for every optional field."""

    query: Query
    texts: Documents
    raw_scores: RawScores = False
    return_text: Annotated[bool, msgspec.Meta(description="echo each text in its result")] = False
    truncate: Truncate = None
    model: Model = None

    def to_request(self, max_documents: int) -> RerankRequest:
        """The rerank service's input, after the limit the config sets."""
        check_count(self.texts, "texts", max_documents, LIMIT_KNOB)
        truncate = True if self.truncate is None else self.truncate
        return RerankRequest(self.query, tuple(self.texts), self.model, self.raw_scores, truncate, field="texts")


class Rank(msgspec.Struct, omit_defaults=True):
    index: Annotated[int, msgspec.Meta(description="the text's position in the request")]
    score: Annotated[float, msgspec.Meta(description="the sigmoid of the model's logit, or the logit with raw_scores")]
    text: str | None = None


def ranks(out: RerankOutcome, texts: tuple[str, ...] | None) -> list[Rank]:
    """/rerank's answer: every text, best first, each with its text when `texts` (return_text) is given."""
    return [Rank(i, float(out.scores[i]), texts[i] if texts is not None else None) for i in out.ranking()]


class V1RerankBody(msgspec.Struct, forbid_unknown_fields=True):
    """Cohere's and Jina's /v1/rerank (documents as strings). null means the default for every optional field."""

    query: Query
    documents: Documents
    model: Model = None
    top_n: Annotated[int, msgspec.Meta(ge=1, description="return the best top_n; default: all")] | None = None
    return_documents: Annotated[bool | None, msgspec.Meta(description="echo each document (default false)")] = None

    def to_request(self, max_documents: int) -> RerankRequest:
        """The rerank service's input, after the limit the config sets."""
        check_count(self.documents, "documents", max_documents, LIMIT_KNOB)
        return RerankRequest(self.query, tuple(self.documents), self.model)


class V1Document(msgspec.Struct):
    text: str


class V1Result(msgspec.Struct, omit_defaults=True):
    index: int
    relevance_score: Annotated[float, msgspec.Meta(description="the sigmoid of the model's logit, 0..1")]
    document: V1Document | None = None


class V1Usage(msgspec.Struct):
    total_tokens: Annotated[int, msgspec.Meta(description="tokens scored, every (query, document) pair's")]


class V1RerankResponse(msgspec.Struct):
    results: list[V1Result]
    model: str
    usage: V1Usage


def v1_response(out: RerankOutcome, body: V1RerankBody) -> V1RerankResponse:
    """/v1/rerank's answer: the best `top_n` (all by default), best first."""
    best = out.ranking()[: body.top_n]
    echo = bool(body.return_documents)
    results = [V1Result(i, float(out.scores[i]), V1Document(body.documents[i]) if echo else None) for i in best]
    return V1RerankResponse(results, out.model.name, V1Usage(out.total_tokens))
