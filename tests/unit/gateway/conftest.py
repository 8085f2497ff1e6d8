"""Gateway unit tests: the real app with no worker, and the transport's pieces on both event loops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest
import uvloop

from tests.support.gateway import Gateway, GatewayFactory, gateway_factory
from tests.support.processes import free_port


@pytest.fixture
def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def start_gateway(endpoint: str, tmp_path: Path) -> GatewayFactory:
    """`async with start_gateway("batching.max_batch_size=4") as gw:` — overrides as section.key=value."""
    return gateway_factory(endpoint, str(tmp_path))


@pytest.fixture
async def gw(start_gateway: GatewayFactory) -> AsyncIterator[Gateway]:
    async with start_gateway() as gateway:
        yield gateway


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Callable[[], object]]:
    """The action runner's tests run on both loops the gateway may use (server.uvloop): asyncio's and
    uvloop's, whose call_at differs for a time already past. The rest: asyncio's only."""
    if item.path.name == "test_actions.py":
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
