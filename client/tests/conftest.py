"""One real gateway and worker for the whole session (they take seconds to start)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from akidb_client import AkiDB

from tests.fake import FakeAkiDB
from tests.server import Server, shared, stop_shared


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    try:
        yield shared()
    finally:
        stop_shared()


@pytest.fixture
def db(server: Server) -> Iterator[AkiDB]:
    with AkiDB(server.url, timeout=60) as client:
        yield client


@pytest.fixture
def name() -> str:
    """A fresh collection name per test."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def fake() -> Iterator[FakeAkiDB]:
    """The loopback fake of tests/fake.py (no worker: reranking's wire shapes only)."""
    with FakeAkiDB() as server:
        yield server
