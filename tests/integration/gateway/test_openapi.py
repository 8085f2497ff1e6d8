"""The OpenAPI document covers every route the app serves; /docs is Swagger UI from local files only."""

from __future__ import annotations

import re

from gateway.api.openapi import OPERATIONS, document
from gateway.app import create_app
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
