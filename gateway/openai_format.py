"""OpenAI's embeddings API shapes: the request, `dimensions`, base64 vectors, and its error body.

Pure functions; the handlers in gateway/routes/openai.py call them around the one embedding path.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from gateway.embedding import EmbedRequest
from gateway.errors import ApiError, InvalidInput
from gateway.http import json_response
from gateway.validation import (
    MAX_DIMENSION,
    check_texts,
    json_type,
    optional_int,
    optional_str,
    reject_unknown,
    require_object,
)
from shared import models
from shared.protocol import ModelInfo

PREFIX = "/v1/"
FIELDS = ("input", "model", "encoding_format", "dimensions", "user")
ENCODINGS = ("float", "base64")

TOKEN_IDS_REFUSED = (
    "input holds token ids; this server takes text only, because each model has its own tokenizer and "
    "OpenAI's token ids mean nothing to it. Send strings (LangChain: OpenAIEmbeddings(..., "
    "check_embedding_ctx_length=False))"
)


@dataclass(frozen=True)
class OpenAIEmbeddingRequest:
    """A checked POST /v1/embeddings body: the shared request plus OpenAI's output options."""

    embed: EmbedRequest
    encoding_format: str = "float"
    dimensions: int | None = None


def parse_request(body: Any, max_texts: int) -> OpenAIEmbeddingRequest:
    """Validate a /v1/embeddings body; `input` follows the same text rules as /embed's `texts`."""
    obj = require_object(body)
    reject_unknown(obj, FIELDS)
    model = optional_str(obj, "model")
    if model is None:
        raise InvalidInput("model is required: the name of a served model (GET /v1/models lists them)", param="model")
    texts = input_texts(obj.get("input"), max_texts)
    encoding = optional_str(obj, "encoding_format", ENCODINGS) or "float"
    dimensions = optional_int(obj, "dimensions", 0, 1, MAX_DIMENSION) or None
    optional_str(obj, "user")  # accepted for compatibility; nothing here is per-user
    # OpenAI's vectors are always unit length, and `dimensions` relies on that.
    return OpenAIEmbeddingRequest(EmbedRequest(texts, model=model, normalize=True), encoding, dimensions)


def input_texts(value: Any, max_texts: int) -> tuple[str, ...]:
    """`input` as texts: one string, or a list of them. Token ids (ints, lists of ints) are refused."""
    if value is None:
        raise InvalidInput("input is required: a string or a list of strings", param="input")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InvalidInput(f"input must be a string or a list of strings, got {json_type(value)}", param="input")
    if any(isinstance(v, list) or (isinstance(v, int) and not isinstance(v, bool)) for v in value):
        raise InvalidInput(TOKEN_IDS_REFUSED, param="input")
    return check_texts(value, "input", max_texts)


def check_dimensions(dimensions: int | None, info: ModelInfo) -> None:
    """Refuse a `dimensions` the model cannot honour: over its size, or any cut of a non-Matryoshka model."""
    if dimensions is None or dimensions == info.dimension:
        return
    if dimensions > info.dimension:
        raise InvalidInput(
            f"dimensions is {dimensions}, over {info.name!r}'s {info.dimension}; send at most {info.dimension}",
            param="dimensions",
        )
    spec = models.find(info.name)
    lowest = spec.matryoshka_min_dim if spec else None
    if lowest is None:
        raise InvalidInput(
            f"model {info.name!r} was not trained Matryoshka-style, so its vectors cut to {dimensions} dimensions "
            f"are not meaningful embeddings; omit dimensions (or send {info.dimension}), or use a model that "
            "supports it (e.g. qwen3-embedding-0.6b)",
            param="dimensions",
        )
    if dimensions < lowest:
        raise InvalidInput(
            f"dimensions must be between {lowest} and {info.dimension} for {info.name!r}, got {dimensions}",
            param="dimensions",
        )


def shorten(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """The first `dimensions` components of each row, renormalised to unit length (Matryoshka)."""
    if dimensions is None or dimensions >= vectors.shape[1]:
        return vectors
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return (cut / np.maximum(norms, np.finfo(np.float32).tiny)).astype(np.float32)


def to_base64(row: np.ndarray) -> str:
    """A vector as OpenAI's base64: little-endian float32 bytes, whatever this machine's byte order."""
    return base64.b64encode(np.ascontiguousarray(row, dtype="<f4").tobytes()).decode("ascii")


def embeddings_body(vectors: np.ndarray, model: str, tokens: int, encoding_format: str) -> dict[str, Any]:
    """OpenAI's `list` of `embedding` objects, with usage (we have no prompt/completion split)."""
    data = [
        {"object": "embedding", "index": i, "embedding": to_base64(row) if encoding_format == "base64" else row}
        for i, row in enumerate(vectors)
    ]
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def model_entry(info: ModelInfo) -> dict[str, Any]:
    """One model in OpenAI's shape. `created` is 0: nothing here records when a model appeared."""
    return {"id": info.name, "object": "model", "created": 0, "owned_by": "akidb"}


def error_type(status: int) -> str:
    """OpenAI's error `type` for an HTTP status (what its SDKs and users match on)."""
    if status >= 500:
        return "server_error"
    return {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error"
    )


def error_body(error: ApiError) -> dict[str, Any]:
    """`{"error": {"message", "type", "param", "code"}}` with our stable code."""
    return {
        "error": {
            "message": error.message,
            "type": error_type(error.http_status),
            "param": error.param,
            "code": error.code,
        }
    }


def render_error(error: ApiError) -> web.Response:
    """The RENDERER hook for PREFIX: same status and headers as elsewhere, OpenAI's body."""
    return json_response(error_body(error), status=error.http_status, headers=error.headers)
