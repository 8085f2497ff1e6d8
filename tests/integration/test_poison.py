"""A job that kills every worker it touches fails with 502 worker_failed after two; the rest keep working."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_worker import EXIT_POISONED
from tests.support.gateway import eventually, make_config, running_gateway
from tests.support.processes import FakeWorkerProcess

MODEL = "all-MiniLM-L6-v2"


@pytest.fixture
def workers(endpoint: str) -> Iterator[list[FakeWorkerProcess]]:
    procs = [FakeWorkerProcess(endpoint, "--worker-id", f"p-{i}", "--exit-on", "POISON") for i in range(3)]
    yield procs
    for p in procs:
        p.stop()


async def test_a_poison_input_fails_after_two_workers_and_other_requests_succeed(
    endpoint: str, workers: list[FakeWorkerProcess], tmp_path: Path
) -> None:
    async with running_gateway(make_config(endpoint, str(tmp_path), "server.request_timeout_s=30")) as gw:
        await gw.wait_for_workers(3, timeout=30)

        async def embed(texts: list[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
            resp = await gw.client.post("/embed", json={"texts": texts})
            return resp.status, await resp.json()

        others = [asyncio.create_task(embed([f"fine {i}"])) for i in range(10)]
        poison = asyncio.create_task(embed(["this one is POISON for the engine"]))
        others += [asyncio.create_task(embed([f"also fine {i}"])) for i in range(10)]
        status, body = await poison
        assert status == 502 and body["error"]["code"] == "worker_failed", body
        assert [s for s, _ in await asyncio.gather(*others)] == [200] * 20
        # Exactly two workers took it (and died); the third never saw it and still serves.
        assert sorted(w.proc.poll() for w in workers if w.proc.poll() is not None) == [EXIT_POISONED] * 2
        await eventually(lambda: gw.workers.live_workers(MODEL) == 1)
        assert (await embed(["after"]))[0] == 200
        assert await gw.metric("akidb_poison_jobs_total") == 1
