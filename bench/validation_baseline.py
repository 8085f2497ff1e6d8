"""The request checks the gateway had before gateway/schemas (orjson + hand-written), frozen here as
bench/validation.py's baseline. Not used by the gateway."""

# ruff: noqa
from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from gateway.errors import InvalidInput
from shared.json_types import json_type  # also imported from here by the routes

MAX_DIMENSION = 1 << 16
POOLINGS = ("mean", "cls", "last")


@dataclass(frozen=True)
class Doc:
    doc_id: str | None
    text: str | None
    vector: np.ndarray | None
    metadata: dict[str, Any] | None


def require_object(body: Any, what: str = "request body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object, got {json_type(body)}")
    return body


def reject_unknown(body: Mapping[str, Any], allowed: Collection[str], what: str = "request body") -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"{what} has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            param=unknown[0],
        )


def optional_str(body: Mapping[str, Any], key: str, choices: Collection[str] | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string, got {json_type(value)}", param=key)
    if choices is not None and value not in choices:
        raise InvalidInput(f"{key} must be one of {', '.join(choices)}, got {value!r}", param=key)
    return value


@overload
def optional_bool(body: Mapping[str, Any], key: str, default: bool) -> bool: ...
@overload
def optional_bool(body: Mapping[str, Any], key: str, default: None) -> bool | None: ...
def optional_bool(body: Mapping[str, Any], key: str, default: bool | None) -> bool | None:
    """The field if it is a boolean, `default` if absent or null; anything else is a 400."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false, got {json_type(value)}", param=key)
    return value


def optional_int(body: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{key} must be an integer, got {json_type(value)}", param=key)
    if not lo <= value <= hi:
        raise InvalidInput(f"{key} must be between {lo} and {hi}, got {value}", param=key)
    return value


def text_list(value: Any, key: str, limit: int) -> tuple[str, ...]:
    """A non-empty list of non-empty strings, at most `limit` long."""
    if not isinstance(value, list):
        raise InvalidInput(f"{key} must be a list of strings, got {json_type(value)}", param=key)
    return check_texts(value, key, limit)


def check_texts(texts: list[Any] | tuple[Any, ...], key: str, limit: int) -> tuple[str, ...]:
    """The rules every front door shares for texts to embed."""
    if not texts:
        raise InvalidInput(f"{key} must hold at least one text", param=key)
    if len(texts) > limit:
        raise InvalidInput(
            f"{key} holds {len(texts)} texts, over the limit of {limit} (batching.max_texts_per_request)", param=key
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(f"{key}[{i}] must be a string, got {json_type(text)}", param=key)
        if not text:
            raise InvalidInput(f"{key}[{i}] is empty", param=key)
    return tuple(texts)


def optional_object(body: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """A JSON object or absent/null."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{key} must be a JSON object, got {json_type(value)}", param=key)
    return value


def optional_text(body: Mapping[str, Any], key: str) -> str | None:
    """A non-empty string, or absent/null."""
    value = optional_str(body, key)
    if value is not None and not value:
        raise InvalidInput(f"{key} is empty; leave it out or give some text", param=key)
    return value


def vector_value(value: Any, key: str, max_dimension: int = MAX_DIMENSION) -> np.ndarray:
    """A non-empty list of finite numbers as float32 (what fits float32: no NaN, no infinity)."""
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{key} must be a non-empty array of numbers, got {json_type(value)}", param=key)
    if len(value) > max_dimension:
        raise InvalidInput(f"{key} has {len(value)} numbers, over the limit of {max_dimension}", param=key)
    # numpy would quietly read true as 1.0, "2" as 2.0 and null as NaN: check the JSON types first.
    if not set(map(type, value)) <= {int, float}:
        bad = next(v for v in value if type(v) not in (int, float))
        raise InvalidInput(f"{key} must hold numbers only, found {json_type(bad)}", param=key)
    try:
        wide = np.array(value, dtype=np.float64)
    except OverflowError:
        raise InvalidInput(f"{key} holds a number beyond float32", param=key) from None
    with np.errstate(over="ignore"):
        vector = wide.astype(np.float32)
    if not np.isfinite(vector).all():
        i = int(np.flatnonzero(~np.isfinite(vector))[0])
        raise InvalidInput(
            f"{key}[{i}] is {value[i]!r}: NaN, infinity and numbers beyond float32 are refused", param=key
        )
    return vector


def record_id(value: Any, key: str, max_len: int = 256) -> str:
    """A document id: 1..max_len characters, no '/' (it goes in URLs) and no control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string, got {json_type(value)}", param=key)
    if not value or len(value) > max_len:
        raise InvalidInput(f"{key} must be 1 to {max_len} characters long, got {len(value)}", param=key)
    if "/" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(f"{key} {value!r} holds '/' or a control character", param=key)
    return value


EMBED_FIELDS = ("texts", "model", "pooling", "normalize", "truncate")


def parse_embed(body: object, max_texts: int) -> tuple[Any, ...]:
    """Validate an /embed body (or a proto request as a dict) into an `EmbedRequest`."""
    obj = require_object(body)
    reject_unknown(obj, EMBED_FIELDS)
    if "texts" not in obj:
        raise InvalidInput("texts is required: a list of strings to embed", param="texts")
    return (
        text_list(obj["texts"], "texts", max_texts),
        optional_str(obj, "model"),
        optional_str(obj, "pooling", POOLINGS),
        optional_bool(obj, "normalize", None),
        optional_bool(obj, "truncate", True),
    )


FIELDS = ("id", "text", "vector", "metadata")


def parse_documents(body: object, limit: int) -> tuple[list[Doc], bool]:
    """One document or `{"documents": [...]}`; returns the documents and whether it was a batch."""
    obj = require_object(body)
    if "documents" not in obj:
        return [parse_document(obj, "")], False
    reject_unknown(obj, ("documents",))
    items = obj["documents"]
    if not isinstance(items, list) or not items:
        raise InvalidInput(f"documents must be a non-empty array, got {json_type(items)}", param="documents")
    if len(items) > limit:
        raise InvalidInput(
            f"documents holds {len(items)}, over the limit of {limit} per request (storage.max_documents_per_request)",
            param="documents",
        )
    docs = [parse_document(item, f"documents[{i}].") for i, item in enumerate(items)]
    ids = [d.doc_id for d in docs if d.doc_id is not None]
    if len(ids) != len(set(ids)):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidInput(f"documents holds id {dup!r} more than once; one request stores each id once", param="id")
    return docs, True


def parse_document(item: Any, where: str) -> Doc:
    """One document object; `where` prefixes field names in errors (e.g. "documents[3].")."""
    obj = require_object(item, where.rstrip(".") or "request body")
    reject_unknown(obj, FIELDS, what=where.rstrip(".") or "request body")
    try:
        doc = Doc(
            doc_id=None if obj.get("id") is None else record_id(obj["id"], "id"),
            text=optional_text(obj, "text"),
            vector=None if obj.get("vector") is None else vector_value(obj["vector"], "vector"),
            metadata=optional_object(obj, "metadata"),
        )
    except InvalidInput as exc:
        raise InvalidInput(where + exc.message, param=exc.param) from None
    if doc.text is None and doc.vector is None:
        raise InvalidInput(f"{where or 'a document '}needs text (to embed) or a vector", param="text")
    return doc
