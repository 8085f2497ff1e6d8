"""Fixtures for integration tests: real worker processes with the real model (or fake workers that speak
the real protocol), real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import pytest
import uvloop

from gateway.storage.engine import Catalogue
from tests.support.backends import backend_params
from tests.support.engines import open_engine
from tests.support.gateway import Gateway, GatewayFactory, gateway_factory, make_config, running_gateway
from tests.support.postgres import fresh_database, start_postgres
from tests.support.processes import WorkerProcess, free_port

# Every embedding-path test runs once per backend (session-scoped: one worker each at a time);
# a backend whose engine is not installed here (OpenVINO on Apple silicon) is skipped, saying so.
BACKENDS = backend_params()


@pytest.fixture
def endpoint() -> str:
    """A fresh endpoint for a test that starts its own workers (the session worker dials zmq_endpoint)."""
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def zmq_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def minilm_worker(zmq_endpoint: str, backend: str) -> Iterator[WorkerProcess]:
    """One MiniLM worker for the whole session; each test's gateway binds the endpoint it dials."""
    worker = WorkerProcess(zmq_endpoint, "--backend", backend)
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One PostgreSQL with pgvector for the session (skipped, or with AKIDB_REQUIRE_PG=1 failed, if it cannot start)."""
    yield from start_postgres(tmp_path_factory.mktemp("pg"))


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """The storage engine of this test's gateway: embedded unless the module asks for both
    (`tests.support.engines.BOTH_ENGINES`)."""
    return str(getattr(request, "param", "embedded"))


@pytest.fixture
def engine_settings(engine: str, request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The config overrides that put a gateway on `engine`."""
    if engine == "embedded":
        return ()
    dsn = fresh_database(request.getfixturevalue("postgres_server"))
    return ("storage.backend=postgres", f"storage.postgres.dsn={dsn}")


@pytest.fixture
async def catalogue(tmp_path: Path, engine_settings: tuple[str, ...]) -> AsyncIterator[Catalogue]:
    """`engine`'s catalogue opened from the config as the gateway opens it, for storage tests without HTTP."""
    async with open_engine(tmp_path, *engine_settings) as cat:
        yield cat


@pytest.fixture
async def gateway(
    zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path: Path, engine_settings: tuple[str, ...]
) -> AsyncIterator[Gateway]:
    async with running_gateway(make_config(zmq_endpoint, str(tmp_path), *engine_settings)) as gw:
        try:
            await gw.wait_for_workers(1)
        except TimeoutError:
            pytest.fail(f"worker did not connect; its log:\n{minilm_worker.output()[-3000:]}")
        yield gw


@pytest.fixture
def start_gateway(endpoint: str, tmp_path: Path, engine_settings: tuple[str, ...]) -> GatewayFactory:
    """A gateway on `endpoint` for fake workers: `async with start_gateway("batching.max_batch_size=4") as gw:`."""
    return gateway_factory(endpoint, str(tmp_path), *engine_settings)


@pytest.fixture
async def gw(start_gateway: GatewayFactory) -> AsyncIterator[Gateway]:
    async with start_gateway() as gateway:
        yield gateway


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Callable[[], object]]:
    """The transport's socket tests run on both loops the gateway may use (server.uvloop): asyncio's and
    uvloop's, whose add_reader on the ZeroMQ FD is what the transport's reading rests on. The rest: asyncio's."""
    if item.path.name == "test_transport.py":
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
