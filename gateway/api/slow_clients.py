"""Slow or hostile HTTP clients: a request body that trickles in is cut off after `server.body_timeout_s`.

A slow request head needs nothing here: aiohttp closes a connection that has not delivered a complete head
within its keep-alive timeout from opening (or from its last response), which `main` sets to
`server.header_timeout_s` (aiohttp starts that timer at connection time from 3.14.5 on: pyproject.toml pins
it, and tests/integration/gateway/test_slow_clients.py fails on a release without it). A slow body is another
matter: aiohttp would wait for it for ever, so this middleware reads every body under a deadline before the
handler runs (handlers then read it from memory).
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter

from gateway.api.http import BODY_REFUSED
from gateway.api.middleware import Handler, render_error
from gateway.errors import PayloadTooLarge, RequestTimeout

log = structlog.get_logger("gateway.api.http")
# Routes that stream their body to disk themselves, under their own limits (a restore's snapshot file).
STREAMED = frozenset({("POST", "/collections/restore")})


def body_deadline(timeout_s: float, registry: CollectorRegistry) -> Middleware:
    """A middleware that answers 408 and closes the connection when a body takes longer than `timeout_s`."""
    closed = Counter(
        "akidb_http_slow_bodies_closed_total",
        "Connections closed because the request body arrived slower than server.body_timeout_s allows",
        registry=registry,
    )

    @web.middleware
    async def read_body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        streamed = route is not None and (request.method, route.canonical) in STREAMED
        if request.body_exists and not streamed:
            try:
                async with asyncio.timeout(timeout_s):
                    await request.read()  # kept by aiohttp: the handler's own read() returns it
            except TimeoutError:
                closed.inc()
                log.warning("slow_body_closed", path=request.path, timeout_s=timeout_s, peer=request.remote)
                error = RequestTimeout(f"request body not received within {timeout_s} s (server.body_timeout_s)")
                return await _answer_and_close(request, render_error(request, error))
            except web.HTTPRequestEntityTooLarge as exc:
                # Left for the handler's own read to raise, so the route counts its refusal like any other.
                request[BODY_REFUSED] = PayloadTooLarge(f"{exc.text} (server.max_body_bytes)")
        return await handler(request)

    return read_body_in_time


async def _answer_and_close(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Send the answer, then drop the connection: aiohttp would otherwise linger reading the rest of the body."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response
