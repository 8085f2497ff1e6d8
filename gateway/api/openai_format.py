"""OpenAI's embeddings API around the one embedding path: the `dimensions` policy, shortening, base64
vectors, model entries, and the error body with its renderer for /v1/.

The request body is declared and checked in gateway/api/schemas/openai.py; the handlers are in
gateway/api/routes/openai.py.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from aiohttp import web

from gateway.api.http import json_response
from gateway.errors import ApiError, DimensionMismatch
from shared import models
from shared.protocol import ModelInfo

PREFIX = "/v1/"


def check_dimensions(dimensions: int | None, info: ModelInfo) -> None:
    """Refuse a `dimensions` the model cannot honour: over its size, or any cut of a non-Matryoshka model."""
    if dimensions is None or dimensions == info.dimension:
        return
    if dimensions > info.dimension:
        raise DimensionMismatch(
            f"dimensions is {dimensions}, over {info.name!r}'s {info.dimension}; send at most {info.dimension}",
            param="dimensions",
        )
    spec = models.find(info.name)
    lowest = spec.matryoshka_min_dim if spec else None
    if lowest is None:
        raise DimensionMismatch(
            f"model {info.name!r} was not trained Matryoshka-style, so its vectors cut to {dimensions} dimensions "
            f"are not meaningful embeddings; omit dimensions (or send {info.dimension}), or use a model that "
            "supports it (e.g. qwen3-embedding-0.6b)",
            param="dimensions",
        )
    if dimensions < lowest:
        raise DimensionMismatch(
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
