"""JSON in and out for aiohttp handlers: strict parsing, orjson rendering (numpy arrays included)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.errors import InvalidJson, PayloadTooLarge, UnsupportedMediaType

_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


async def read_json(request: web.Request) -> Any:
    """The decoded body; 415 unless it is declared JSON, 400 if it does not parse, 413 if too big."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {request.content_type or 'none'}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"{exc.text} (server.max_body_bytes)") from None
    if not raw:
        raise InvalidJson("request body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"request body is not valid JSON: {exc}") from None


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Render with orjson: float32 arrays go out without a Python float per element."""
    return web.Response(
        body=orjson.dumps(data, option=_DUMP_OPTIONS),
        status=status,
        headers=headers,
        content_type="application/json",
    )
