"""Proto messages ⇄ the embedding path's request and outcome. Pure: no IO, no grpc calls."""

from __future__ import annotations

from typing import Any

from gateway.embed_input import parse_embed
from gateway.embedding import EmbedOutcome, EmbedRequest
from shared.proto import embedding_pb2 as pb
from shared.protocol import ModelInfo


def to_embed_request(msg: pb.EmbeddingRequest, max_texts: int) -> EmbedRequest:
    """Check a proto request by the very rules (and messages) of POST /embed."""
    body: dict[str, Any] = {
        "texts": list(msg.texts),
        # proto3 strings have no presence: empty means "not set", as a JSON null does.
        "model": msg.model or None,
        "pooling": msg.pooling or None,
        # `optional bool` has presence: unset means the default (true), not false.
        "normalize": msg.normalize if msg.HasField("normalize") else None,
    }
    return parse_embed(body, max_texts)


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
    return pb.ModelInfoResponse(model=info.name, dimension=info.dimension, max_tokens=info.max_tokens)
