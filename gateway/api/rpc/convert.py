"""Proto messages ⇄ the embedding and rerank paths' requests and outcomes. No IO, no grpc calls."""

from __future__ import annotations

from gateway.api.schemas.common import validate
from gateway.api.schemas.embed import EmbedBody
from gateway.api.schemas.rerank import RerankBody
from gateway.services.embedding import EmbedOutcome, EmbedRequest
from gateway.services.rerank import RerankOutcome, RerankRequest
from shared.proto import embedding_pb2 as pb
from shared.protocol import ModelInfo


class _EmbedFields:
    """An `EmbeddingRequest` read by proto3's presence rules, for msgspec to check as an `EmbedBody`
    attribute by attribute (the rules and messages of POST /embed, with no dict in between)."""

    __slots__ = ("input_type", "model", "normalize", "pooling", "texts", "truncate")

    def __init__(self, msg: pb.EmbeddingRequest) -> None:
        self.texts = list(msg.texts)
        # proto3 strings have no presence: empty means "not set", as a JSON null does.
        self.model = msg.model or None
        self.pooling = msg.pooling or None
        # `optional bool` has presence: unset means the default (true), not false.
        self.normalize = msg.normalize if msg.HasField("normalize") else None
        self.truncate = None
        self.input_type = msg.input_type or None


def to_embed_request(msg: pb.EmbeddingRequest, max_texts: int) -> EmbedRequest:
    """Check a proto request by the very rules (and messages) of POST /embed."""
    return validate(_EmbedFields(msg), EmbedBody).to_request(max_texts)


def to_embedding_response(out: EmbedOutcome) -> pb.EmbeddingResponse:
    """One `Embedding` per row, in order, with the model, dimension and usage."""
    resp = pb.EmbeddingResponse(
        model=out.model.name,
        dimension=out.model.dimension,
        usage=pb.Usage(total_tokens=out.total_tokens, duration_ms=out.duration_ms),
    )
    for row in out.vectors.tolist():  # one C-level conversion, not a numpy scalar per float
        resp.embeddings.add().values.extend(row)
    return resp


def to_model_info_response(info: ModelInfo) -> pb.ModelInfoResponse:
    """The facts a client needs to size its storage and its inputs."""
    return pb.ModelInfoResponse(
        model=info.name,
        dimension=info.dimension,
        max_tokens=info.max_tokens,
        query_prompt=info.query_prompt,
        document_prompt=info.document_prompt,
    )


class _RerankFields:
    """A `RerankRequest` read by proto3's presence rules, checked by msgspec as a `RerankBody` (POST /rerank's
    rules and messages)."""

    __slots__ = ("model", "query", "raw_scores", "return_text", "texts", "truncate")

    def __init__(self, msg: pb.RerankRequest) -> None:
        self.query = msg.query
        self.texts = list(msg.texts)
        self.model = msg.model or None
        self.raw_scores = msg.raw_scores
        self.return_text = msg.return_text
        self.truncate = msg.truncate if msg.HasField("truncate") else None


def to_rerank_request(msg: pb.RerankRequest, max_documents: int) -> RerankRequest:
    """Check a proto request by the very rules (and messages) of POST /rerank."""
    return validate(_RerankFields(msg), RerankBody).to_request(max_documents)


def to_rerank_response(out: RerankOutcome, texts: tuple[str, ...] | None) -> pb.RerankResponse:
    """Every text best first (with its text when `texts`, return_text, is given), the model and usage."""
    resp = pb.RerankResponse(
        model=out.model.name, usage=pb.Usage(total_tokens=out.total_tokens, duration_ms=out.duration_ms)
    )
    for i in out.ranking():
        result = resp.results.add(index=i, score=float(out.scores[i]))
        if texts is not None:
            result.text = texts[i]
    return resp
