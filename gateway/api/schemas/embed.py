"""POST /embed (and gRPC Embed): the request, its conversion into `EmbedRequest`, and the response."""

from __future__ import annotations

from typing import Annotated

import msgspec

from gateway.api.schemas.common import InputType, Pooling, Text, check_count
from gateway.services.embedding import EmbedRequest

Texts = Annotated[list[Text], msgspec.Meta(min_length=1, description="the texts to embed", extra={"noun": "text"})]


class EmbedBody(msgspec.Struct, forbid_unknown_fields=True):
    """Texts to embed and how. null means the default for every optional field."""

    texts: Texts
    model: Annotated[str | None, msgspec.Meta(description="a served model or alias; default: the gateway's")] = None
    pooling: Annotated[Pooling | None, msgspec.Meta(description="default: the model's own")] = None
    normalize: Annotated[bool | None, msgspec.Meta(description="unit-length vectors; default: embedding.normalize")] = (
        None
    )
    truncate: Annotated[bool | None, msgspec.Meta(description="cut texts at the model's max_tokens (default true)")] = (
        None
    )
    input_type: InputType | None = None

    def to_request(self, max_texts: int) -> EmbedRequest:
        """The embedding service's input, after the limit the config sets."""
        check_count(self.texts, "texts", max_texts, "batching.max_texts_per_request")
        return EmbedRequest(
            texts=tuple(self.texts),
            model=self.model,
            pooling=self.pooling,
            normalize=self.normalize,
            truncate=True if self.truncate is None else self.truncate,
            input_type=self.input_type,
        )


class EmbedUsage(msgspec.Struct):
    total_tokens: int
    duration_ms: int


class EmbedResponse(msgspec.Struct):
    embeddings: list[list[float]]
    model: str
    dimension: int
    usage: EmbedUsage
