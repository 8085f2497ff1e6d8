"""Fixtures for fault tests: one real worker for the module's gateways, on the fastest installed backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.backends import fastest_backend
from tests.support.processes import WorkerProcess, free_port

# Fault tests load the machine on purpose; a few late heartbeats must not drop the worker mid-test.
PATIENT = ("--set", "heartbeat.liveness=25")


@pytest.fixture(scope="module")
def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def worker(endpoint: str) -> Iterator[WorkerProcess]:
    """One MiniLM worker; each test's gateway binds the endpoint it dials."""
    proc = WorkerProcess(endpoint, "--backend", fastest_backend(), *PATIENT)
    yield proc
    proc.stop()
