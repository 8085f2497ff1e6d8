"""Fixtures for integration tests: real worker processes with the real model, real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.backends import backend_params
from tests.support.gateway import Gateway, make_config, running_gateway
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


@pytest.fixture
async def gateway(zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path) -> AsyncIterator[Gateway]:  # type: ignore[no-untyped-def]
    async with running_gateway(make_config(zmq_endpoint, str(tmp_path))) as gw:
        try:
            await gw.wait_for_workers(1)
        except TimeoutError:
            pytest.fail(f"worker did not connect; its log:\n{minilm_worker.output()[-3000:]}")
        yield gw
