"""JSON in and out for aiohttp handlers: bodies decoded straight into the API's Structs, orjson rendering
(numpy arrays included)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import orjson
from aiohttp import web

from gateway.api.schemas.common import decode
from gateway.errors import ApiError, InvalidJson, NotFound, PayloadTooLarge, UnsupportedMediaType

T = TypeVar("T")
_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_ENCODER = msgspec.json.Encoder()


# A body refused while gateway/api/slow_clients.py read it ahead waits here for `read_body` to raise it.
BODY_REFUSED = web.RequestKey("akidb_body_refused", ApiError)


async def read_body(request: web.Request) -> bytes:
    """The raw JSON body; 415 unless it is declared JSON, 413 if too big, 400 if empty."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {request.content_type or 'none'}")
    refused = request.get(BODY_REFUSED)
    if refused is not None:
        raise refused
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"{exc.text} (server.max_body_bytes)") from None
    if not raw:
        raise InvalidJson("request body is empty; send a JSON object")
    return raw


async def read_as(request: web.Request, cls: type[T]) -> T:
    """The body decoded and checked as `cls` (see gateway/schemas)."""
    return decode(await read_body(request), cls)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Render with orjson: float32 arrays go out without a Python float per element."""
    return web.Response(
        body=orjson.dumps(data, option=_DUMP_OPTIONS),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def struct_response(body: msgspec.Struct | Sequence[msgspec.Struct], status: int = 200) -> web.Response:
    """A response Struct from gateway/api/schemas, the type openapi.py publishes for the route, encoded as declared."""
    return web.Response(body=_ENCODER.encode(body), status=status, content_type="application/json")


def static_file(request: web.Request, folder: Path, files: dict[str, str], page: str) -> web.Response:
    """One file of a fixed list (`files`: name → media type) from `folder`; 404 naming `page` for any other.

    The name from the URL only ever selects a key of `files`, so no path from a request reaches the disk."""
    name = request.match_info["file"]
    media = files.get(name)
    if media is None:
        raise NotFound(f"no file {name!r} under {request.path.rsplit('/', 1)[0]}; the page is GET {page}")
    return web.Response(body=(folder / name).read_bytes(), content_type=media, headers={"Cache-Control": "no-cache"})
