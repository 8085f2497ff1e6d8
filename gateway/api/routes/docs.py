"""GET /openapi.json and GET /docs: the API described, and browsable with Swagger UI shipped in a package."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from gateway.api.http import json_response, static_file
from gateway.api.openapi import ASSETS, document

routes = web.RouteTableDef()

SWAGGER_UI = Path(str(swagger_ui_bundle.swagger_ui_path))
# Relative URLs, so the page works behind a proxy that mounts the gateway under a prefix.
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>AkiDB API</title>
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png">
  <link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script>
    // validatorUrl null: Swagger UI would otherwise send the document to an online validator.
    window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui", validatorUrl: null});
  </script>
</body>
</html>
"""


def _version() -> str:
    try:
        return metadata.version("akidb")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(document(_version()))


@routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


@routes.get("/docs/{file}")
async def asset(request: web.Request) -> web.Response:
    return static_file(request, SWAGGER_UI, ASSETS, "/docs")
