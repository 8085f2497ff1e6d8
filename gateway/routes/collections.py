"""/collections: create, list, describe and delete collections."""

from __future__ import annotations

import re

from aiohttp import web

from gateway import keys
from gateway.collection_inputs import CollectionSpec
from gateway.errors import InvalidInput
from gateway.http import json_response, read_json
from gateway.validation import (
    MAX_DIMENSION,
    json_type,
    optional_bool,
    optional_int,
    optional_object,
    optional_str,
    reject_unknown,
    require_object,
)
from shared.config import METRICS, POOLINGS

FIELDS = ("name", "dimension", "metric", "model", "pooling", "normalize", "index")
INDEX_FIELDS = ("connectivity", "expansion_add", "expansion_search")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

routes = web.RouteTableDef()


def parse_collection(body: object) -> CollectionSpec:
    """Validate a POST /collections body."""
    obj = require_object(body)
    reject_unknown(obj, FIELDS)
    name = obj.get("name")
    if not isinstance(name, str):
        raise InvalidInput(f"name is required: a string, got {json_type(name)}", param="name")
    if not NAME.match(name) or name.startswith("col_"):
        raise InvalidInput(
            f"name {name!r} must be 1-128 letters, digits, '.', '_' or '-', start with a letter or digit, "
            "and not start with 'col_' (ids do)",
            param="name",
        )
    index = optional_object(obj, "index") or {}
    reject_unknown(index, INDEX_FIELDS, what="index")
    dimension = obj.get("dimension")
    return CollectionSpec(
        name=name,
        dimension=None if dimension is None else optional_int(obj, "dimension", 0, 1, MAX_DIMENSION),
        metric=optional_str(obj, "metric", METRICS) or "cosine",
        model=optional_str(obj, "model"),
        pooling=optional_str(obj, "pooling", POOLINGS),
        normalize=None if obj.get("normalize") is None else optional_bool(obj, "normalize", True),
        connectivity=_index_int(index, "connectivity", 2, 128),
        expansion_add=_index_int(index, "expansion_add", 1, 4096),
        expansion_search=_index_int(index, "expansion_search", 1, 4096),
    )


def _index_int(index: dict[str, object], key: str, lo: int, hi: int) -> int | None:
    if index.get(key) is None:
        return None
    try:
        return optional_int(index, key, 0, lo, hi)
    except InvalidInput as exc:
        raise InvalidInput(f"index.{exc.message}", param=f"index.{key}") from None


@routes.post("/collections")
async def create_collection(request: web.Request) -> web.Response:
    spec = parse_collection(await read_json(request))
    return json_response(await request.app[keys.COLLECTIONS].create(spec), status=201)


@routes.get("/collections")
async def list_collections(request: web.Request) -> web.Response:
    return json_response({"collections": request.app[keys.COLLECTIONS].describe_all()})


@routes.get("/collections/{collection}")
async def get_collection(request: web.Request) -> web.Response:
    return json_response(request.app[keys.COLLECTIONS].get(request.match_info["collection"]).describe())


@routes.delete("/collections/{collection}")
async def delete_collection(request: web.Request) -> web.Response:
    deleted = await request.app[keys.COLLECTIONS].delete(request.match_info["collection"])
    return json_response({"id": deleted, "deleted": True})
