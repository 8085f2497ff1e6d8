"""Gateway unit tests: the transport's pieces on both event loops (no sockets: see tests/unit/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Callable[[], object]]:
    """The action runner's tests run on both loops the gateway may use (server.uvloop): asyncio's and
    uvloop's, whose call_at differs for a time already past. The rest: asyncio's only."""
    if item.path.name == "test_actions.py":
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
