"""The slow-head bound that gateway/main.py takes from aiohttp: a connection without a complete request head is
closed `keepalive_timeout` after it opened. aiohttp 3.14.5 starts that timer when the connection is made (older
releases started it only after a first response, so a client that never finished a head was never cut off);
pyproject.toml pins the 3.14 series from 3.14.5, and this test fails on a release that loses the behaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.support.processes import free_port

# Far above the timeout: a guard that ends a broken test, not a measure of how fast the close comes.
GUARD_S = 30.0


async def hello(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, keepalive_timeout=0.3, access_log=None)
    await runner.setup()
    chosen = free_port()
    await web.TCPSite(runner, "127.0.0.1", chosen).start()
    yield chosen
    await runner.cleanup()


async def closed_after(port: int, sent: bytes) -> bytes:
    """Everything the server says before it closes a connection that sent only `sent`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    try:
        async with asyncio.timeout(GUARD_S):
            return await reader.read()
    finally:
        writer.close()


async def test_a_connection_that_never_sends_a_head_is_closed(port: int) -> None:
    assert await closed_after(port, b"") == b""


async def test_a_head_that_never_ends_is_closed_without_an_answer(port: int) -> None:
    assert await closed_after(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ") == b""


async def test_a_complete_head_is_answered(port: int) -> None:
    answer = await closed_after(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
