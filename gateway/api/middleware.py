"""Request ids and the one place errors become HTTP responses."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway.api.http import json_response
from gateway.errors import ApiError, MethodNotAllowed, NotFound, PayloadTooLarge, as_api_error

log = structlog.get_logger("gateway.api.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Routes that answer errors in another body shape render them themselves (the OpenAI routes).
RENDERER = web.AppKey("error_renderer", dict)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to every log line of this request, and echo it back."""
    request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    response = await handler(request)
    response.headers["X-Request-ID"] = request_id
    return response


def render_error(request: web.Request, error: ApiError) -> web.Response:
    """Our body shape by default; a route prefix may register its own renderer."""
    for prefix, renderer in request.app.get(RENDERER, {}).items():
        if request.path.startswith(prefix):
            return renderer(error)
    return json_response(error.body(), status=error.http_status, headers=error.headers)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ApiError (or a mapped storage error) → its status and JSON body; aiohttp's own HTTP errors → JSON;
    anything else → 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return render_error(request, _from_http(exc, request))
    except Exception as exc:
        error = as_api_error(exc)
        if error is None:
            log.exception("unhandled_error", path=request.path, method=request.method)
            error = ApiError("internal error; see the gateway log for this request id")
        return render_error(request, error)


def _from_http(exc: web.HTTPException, request: web.Request) -> ApiError:
    if exc.status == 404:
        return NotFound(f"no route for {request.method} {request.path}")
    if exc.status == 405:
        # RFC 9110: a 405 says what is allowed.
        allowed = ", ".join(sorted(_allowed(request, getattr(exc, "allowed_methods", set()))))
        return MethodNotAllowed(f"{request.method} is not allowed on {request.path}", headers={"Allow": allowed})
    if exc.status == 413:
        return PayloadTooLarge(f"request body is too large: {exc.text}")
    error = ApiError(exc.text or exc.reason)
    error.http_status = exc.status  # type: ignore[misc]
    error.code = exc.reason.lower().replace(" ", "_")  # type: ignore[misc]
    return error


def _allowed(request: web.Request, matched: set[str]) -> set[str]:
    """The methods of the path's own route when the path is a literal one: aiohttp also counts patterns that
    match it, so POST /collections/restore would advertise GET /collections/{collection}'s GET and DELETE
    (collection names may not be `restore`, so those answer 404 there)."""
    for resource in request.app.router.resources():
        if isinstance(resource, web.PlainResource) and resource.canonical == request.path:
            return {route.method for route in resource}
    return matched
