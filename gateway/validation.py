"""Checks for untrusted JSON values, each raising `InvalidInput` that names the field."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, overload

from gateway.errors import InvalidInput


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


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
