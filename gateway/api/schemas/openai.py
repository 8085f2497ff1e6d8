"""OpenAI's embeddings API bodies: POST /v1/embeddings (request and response), GET /v1/models, the error."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from gateway.api.schemas.common import MAX_DIMENSION, InputType, Text, check_count, choices, decode, loads
from gateway.errors import InvalidInput
from gateway.services.embedding import EmbedRequest

TOKEN_IDS_REFUSED = (
    "input holds token ids; this server takes text only, because each model has its own tokenizer and "
    "OpenAI's token ids mean nothing to it. Send strings (LangChain: OpenAIEmbeddings(..., "
    "check_embedding_ctx_length=False))"
)

Input = Annotated[
    Text | Annotated[list[Text], msgspec.Meta(min_length=1, extra={"noun": "text"})],
    msgspec.Meta(description="one text or a list of them (token ids are refused)"),
]


class EmbeddingsBody(msgspec.Struct, forbid_unknown_fields=True):
    """POST /v1/embeddings. Vectors are always unit length (OpenAI's are, and `dimensions` relies on it)."""

    input: Input
    model: Annotated[str, msgspec.Meta(description="a served model (GET /v1/models lists them)")]
    encoding_format: Annotated[Literal["float", "base64"], choices("float", "base64")] | None = None
    dimensions: Annotated[int, msgspec.Meta(ge=1, le=MAX_DIMENSION)] | None = None
    user: Annotated[str | None, msgspec.Meta(description="accepted for compatibility; unused")] = None
    input_type: InputType | None = None  # an extension (OpenAI has no such field), as Cohere and Voyage name it

    @property
    def texts(self) -> tuple[str, ...]:
        return (self.input,) if isinstance(self.input, str) else tuple(self.input)

    def to_request(self, max_texts: int) -> EmbedRequest:
        """The embedding service's input (always normalised), after the limit the config sets."""
        check_count(self.texts, "input", max_texts, "batching.max_texts_per_request")
        return EmbedRequest(self.texts, model=self.model, normalize=True, input_type=self.input_type)


def parse(raw: bytes) -> EmbeddingsBody:
    """Decode a /v1/embeddings body; token-id inputs get the message that says what to send instead."""
    try:
        return decode(raw, EmbeddingsBody)
    except InvalidInput as exc:
        if exc.param == "input" and _token_ids(loads(raw)):
            raise InvalidInput(TOKEN_IDS_REFUSED, param="input") from None
        raise


def _token_ids(body: object) -> bool:
    """Whether `input` looks like token ids: a list holding integers or lists."""
    value = body.get("input") if isinstance(body, dict) else None
    return isinstance(value, list) and any(
        isinstance(v, list) or (isinstance(v, int) and not isinstance(v, bool)) for v in value
    )


class Embedding(msgspec.Struct):
    object: Literal["embedding"]
    index: int
    embedding: Annotated[list[float] | str, msgspec.Meta(description="numbers, or base64 little-endian float32")]


class OpenAIUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(msgspec.Struct):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: OpenAIUsage


class Model(msgspec.Struct):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(msgspec.Struct):
    object: Literal["list"]
    data: list[Model]


class OpenAIErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str


class OpenAIError(msgspec.Struct):
    """The error body under /v1/, OpenAI's shape with our stable code."""

    error: OpenAIErrorDetail
