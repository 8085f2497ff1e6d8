"""Gateway unit tests: the real app and transport, with fake workers that speak the real protocol."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import uvloop

from tests.support.gateway import Gateway, make_config, running_gateway
from tests.support.processes import free_port

GatewayFactory = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def start_gateway(endpoint: str, tmp_path: Path) -> GatewayFactory:
    """`async with start_gateway("batching.max_batch_size=4") as gw:` — overrides as section.key=value."""

    def factory(*overrides: str) -> AbstractAsyncContextManager[Gateway]:
        return running_gateway(make_config(endpoint, str(tmp_path), *overrides))

    return factory


@pytest.fixture
async def gw(start_gateway: GatewayFactory) -> AsyncIterator[Gateway]:
    async with start_gateway() as gateway:
        yield gateway


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Callable[[], object]]:
    """The transport's tests run on both loops the gateway may use (server.uvloop): asyncio's and uvloop's,
    whose add_reader on the ZeroMQ FD is what the transport's reading rests on. The rest: asyncio's only."""
    if item.path.name == "test_transport.py":
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
