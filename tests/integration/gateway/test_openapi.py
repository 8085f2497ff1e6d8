"""The OpenAPI document covers every route the app serves; /docs is Swagger UI from local files only."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jsonschema_rs
import orjson
import pytest

from gateway.api.openapi import OPERATIONS, document
from gateway.api.schemas.collections import CollectionBody
from gateway.api.schemas.common import decode
from gateway.api.schemas.documents import InsertBody
from gateway.api.schemas.search import SearchBody
from gateway.app import create_app
from gateway.errors import InvalidInput
from tests.support.gateway import Gateway, make_config


def served_routes(tmp_path) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    app = create_app(make_config("tcp://127.0.0.1:1", str(tmp_path)))
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds one per GET; HEAD is GET without the body
            continue
        path = re.sub(r"{(\w+):[^}]*}", r"{\1}", route.resource.canonical)  # type: ignore[union-attr]
        routes.add((route.method.lower(), path))
    return routes


def test_every_route_is_in_the_document_and_nothing_else(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = document("test")
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert served_routes(tmp_path) == documented == set(OPERATIONS)


def test_every_operation_declares_its_responses_and_error_shape() -> None:
    doc = document("test")
    assert doc["openapi"] == "3.1.0"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            statuses = [int(s) for s in op["responses"]]
            assert statuses[0] in (200, 201, 202), (method, path)
            for status in statuses[1:]:
                schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
                expected = "OpenAIError" if path.startswith("/v1/") else "ErrorBody"
                assert schema == {"$ref": f"#/components/schemas/{expected}"}, (method, path, status)
            for name in re.findall(r"{(\w+)}", path):
                assert any(p["name"] == name and p["in"] == "path" for p in op["parameters"])
    listing = doc["paths"]["/collections/{collection}/documents"]["get"]["parameters"]
    assert {p["name"] for p in listing if p["in"] == "query"} == {"limit", "after", "include_vector"}


def test_input_type_and_the_prompts_are_in_the_document() -> None:
    schemas = document("test")["components"]["schemas"]
    for body in ("EmbedBody", "EmbeddingsBody"):
        (choice, null) = schemas[body]["properties"]["input_type"]["anyOf"]
        assert set(choice["enum"]) == {"query", "document"} and null == {"type": "null"}
        assert "input_type" not in schemas[body].get("required", [])
    assert {"query_prompt", "document_prompt"} <= set(schemas["ModelRow"]["required"])


def test_search_modes_are_in_the_document() -> None:
    schemas = document("test")["components"]["schemas"]
    for body in ("SearchBody", "SearchItem"):
        props = schemas[body]["properties"]
        assert set(props["mode"]["enum"]) == {"dense", "keyword", "hybrid"} and props["mode"]["default"] == "dense"
        assert (
            set(props["keyword_syntax"]["enum"]) == {"plain", "fts5"} and props["keyword_syntax"]["default"] == "plain"
        )
        (alpha, null) = props["alpha"]["anyOf"]
        assert (alpha["minimum"], alpha["maximum"]) == (0, 1) and null == {"type": "null"}
        assert "ranks" in props["include"]["anyOf"][0]["items"]["enum"]
    (ranks, _) = schemas["Hit"]["properties"]["ranks"]["anyOf"]
    assert ranks["additionalProperties"] == {"type": "integer"}


async def test_openapi_json_is_served(gw: Gateway) -> None:
    resp = await gw.client.get("/openapi.json")
    assert resp.status == 200 and (await resp.json())["paths"].keys() == document("x")["paths"].keys()


async def test_docs_page_loads_only_local_files(gw: Gateway) -> None:
    resp = await gw.client.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "http://" not in page and "https://" not in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert not any(a.startswith("/") for a in assets)  # no "//cdn..." either: relative, served below
    assert "docs/swagger-ui-bundle.js" in assets and "docs/swagger-ui.css" in assets
    for asset in assets:
        got = await gw.client.get("/" + asset)
        assert got.status == 200, asset
        assert len(await got.read()) > 100
    assert (await gw.client.get("/docs/../pyproject.toml")).status == 404
    assert (await gw.client.get("/docs/index.html")).status == 404  # only the files the page uses


async def test_method_not_allowed_says_what_is(gw: Gateway) -> None:
    resp = await gw.client.put("/collections")
    assert resp.status == 405 and resp.headers["Allow"] == "GET, HEAD, POST"


async def test_a_literal_path_advertises_only_its_own_methods(gw: Gateway) -> None:
    # /collections/{collection} matches "restore" too; its GET and DELETE are not POST /collections/restore's.
    resp = await gw.client.options("/collections/restore")
    assert resp.status == 405 and resp.headers["Allow"] == "POST"
    resp = await gw.client.get("/collections/restore")  # no collection may be named so
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "collection_not_found"


def schema_accepts(name: str, body: Any) -> bool:
    components = document("test")["components"]
    return bool(
        jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": components}).is_valid(
            body
        )
    )


def server_accepts(check: Callable[[], object]) -> bool:
    try:
        check()
    except InvalidInput:
        return False
    return True


def search(body: Any) -> object:
    parsed = decode(orjson.dumps(body), SearchBody)
    return parsed.to_queries() if parsed.queries is not None else parsed.to_query()


# The document's cross-field rules say what the server checks: a body is schema-valid iff it is accepted.
SEARCHES = [
    {"query": "x"},
    {"vector": [1.0, 2.0]},
    {},
    {"query": None, "vector": None},
    {"query": "x", "vector": [1.0]},
    {"vector": [1.0], "mode": "keyword"},
    {"query": "x", "mode": "hybrid", "alpha": 0.3},
    {"query": "x", "mode": "dense", "alpha": 0.3},
    {"query": "x", "alpha": None},
    {"query": "x", "keyword_syntax": "fts5"},
    {"query": "x", "mode": "keyword", "keyword_syntax": "fts5"},
    {"queries": [{"query": "a"}, {"vector": [1.0], "k": 3}]},
    {"queries": [{"query": "a"}], "query": "b"},
    {"queries": [{"query": "a"}], "mode": "hybrid"},
    {"queries": [{}]},
    {"queries": [{"query": "a", "vector": [1.0]}]},
    {"queries": None, "query": "x"},
    {"query": "x", "k": 5.0},
    {"query": "x", "k": 5.5},
    {"vector": [3.5e38]},
]
INSERTS = [
    {"text": "x"},
    {"vector": [1.0]},
    {"text": None, "vector": [1.0]},
    {},
    {"id": "a", "metadata": {"k": 1}},
    {"text": None, "vector": None},
    {"documents": [{"text": "x"}, {"vector": [1.0]}]},
    {"documents": [{"text": "x"}, {"id": "b"}]},
    {"documents": []},
    {"documents": [{"text": "x"}], "text": "y"},
]


@pytest.mark.parametrize("body", SEARCHES)
def test_the_search_schema_states_what_the_server_checks(body: Any) -> None:
    assert schema_accepts("SearchBody", body) == server_accepts(lambda: search(body)), body


@pytest.mark.parametrize("body", INSERTS)
def test_the_insert_schema_states_what_the_server_checks(body: Any) -> None:
    in_schema = schema_accepts("DocumentBody", body) or schema_accepts("DocumentBatch", body)
    assert in_schema == server_accepts(lambda: decode(orjson.dumps(body), InsertBody).to_inputs(1000)), body


def test_integer_fields_take_integral_numbers() -> None:
    # JSON has one number type, and JSON Schema's `integer` accepts 5.0: so does the server.
    body = decode(b'{"name": "a", "dimension": 384.0, "index": {"connectivity": 8.0}}', CollectionBody)
    assert (body.dimension, body.index and body.index.connectivity) == (384, 8)
    assert isinstance(body.dimension, int)
    with pytest.raises(InvalidInput, match="dimension must be an integer, got number"):
        decode(b'{"name": "a", "dimension": 384.5}', CollectionBody)
