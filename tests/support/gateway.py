"""An in-process gateway for tests: the real app on a real port, with real ZeroMQ sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.api import keys
from gateway.app import create_app
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.fleet import WorkerView
from shared.config import Config, load_config
from tests.support.keys import keys_setting
from tests.support.processes import TEST_HEARTBEAT


def make_config(zmq_endpoint: str, data_dir: str, *overrides: str) -> Config:
    """Test defaults (fast heartbeats, loopback, CURVE with the session's keys) plus `section.key=value` overrides."""
    base = [f"zmq.bind={zmq_endpoint}", f"zmq.connect={zmq_endpoint}", f"storage.data_dir={data_dir}", *TEST_HEARTBEAT]
    base.append(keys_setting())
    return load_config(None, {}, [*base, "server.grpc_enabled=false", *overrides])


@dataclass
class Gateway:
    app: web.Application
    client: TestClient

    @property
    def workers(self) -> WorkerView:
        return self.app[keys.WORKERS]

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher's state, for tests that wait for a job in flight or an empty queue."""
        return self.app[keys.TRANSPORT].dispatcher

    async def wait_for_workers(self, count: int, model: str = "all-MiniLM-L6-v2", timeout: float = 90) -> None:
        """Until `count` workers for `model` are registered (workers take seconds to load)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.workers.live_workers(model) < count:
            if loop.time() > end:
                raise TimeoutError(f"{self.workers.live_workers(model)} of {count} workers after {timeout}s")
            await asyncio.sleep(0.05)

    async def metric(self, name: str, **labels: str) -> float:
        """One sample's value from /metrics (0 if absent)."""
        value = self.app[keys.REGISTRY].get_sample_value(name, labels or None)
        return float(value or 0.0)


GatewayFactory = Callable[..., AbstractAsyncContextManager[Gateway]]


def gateway_factory(endpoint: str, data_dir: str, *settings: str) -> GatewayFactory:
    """`async with factory("batching.max_batch_size=4") as gw:` — overrides as section.key=value (after `settings`)."""

    def factory(*overrides: str) -> AbstractAsyncContextManager[Gateway]:
        return running_gateway(make_config(endpoint, data_dir, *settings, *overrides))

    return factory


@contextlib.asynccontextmanager
async def running_gateway(cfg: Config) -> AsyncIterator[Gateway]:
    app = create_app(cfg)
    client = TestClient(TestServer(app))
    try:
        await client.start_server()
    except BaseException:
        # A start-up that fails (an unreachable database) would leave the client's session unclosed.
        await client.close()
        raise
    try:
        yield Gateway(app, client)
    finally:
        await client.close()


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `condition()` holds (the gateway handles frames asynchronously)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)
