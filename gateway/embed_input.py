"""The rules for an embedding request's fields, shared by POST /embed and gRPC Embed."""

from __future__ import annotations

from gateway.embedding import EmbedRequest
from gateway.errors import InvalidInput
from gateway.validation import optional_bool, optional_str, reject_unknown, require_object, text_list
from shared.config import POOLINGS

FIELDS = ("texts", "model", "pooling", "normalize", "truncate")


def parse_embed(body: object, max_texts: int) -> EmbedRequest:
    """Validate an /embed body (or a proto request as a dict) into an `EmbedRequest`."""
    obj = require_object(body)
    reject_unknown(obj, FIELDS)
    if "texts" not in obj:
        raise InvalidInput("texts is required: a list of strings to embed", param="texts")
    return EmbedRequest(
        texts=text_list(obj["texts"], "texts", max_texts),
        model=optional_str(obj, "model"),
        pooling=optional_str(obj, "pooling", POOLINGS),
        normalize=optional_bool(obj, "normalize", None),
        truncate=optional_bool(obj, "truncate", True),
    )
