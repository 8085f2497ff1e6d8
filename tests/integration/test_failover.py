"""No lost requests: kill -9 one of two real workers while requests are in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import make_config, running_gateway
from tests.support.processes import WorkerProcess


@pytest.fixture
def two_workers(endpoint: str, backend: str) -> Iterator[list[WorkerProcess]]:
    workers = [WorkerProcess(endpoint, "--backend", backend, "--worker-id", f"fo-{i}") for i in range(2)]
    yield workers
    for w in workers:
        w.stop()


@pytest.mark.slow
async def test_kill_9_a_worker_mid_load_and_every_request_succeeds(
    endpoint: str, two_workers: list[WorkerProcess], tmp_path: Path
) -> None:
    cfg = make_config(endpoint, str(tmp_path), "server.request_timeout_s=60")
    async with running_gateway(cfg) as gw:
        await gw.wait_for_workers(2)
        texts = [f"request {i} about failover and heartbeats" for i in range(8)]

        async def one(i: int) -> int:
            resp = await gw.client.post("/embed", json={"texts": texts})
            body = await resp.json()
            assert resp.status == 200, body
            assert len(body["embeddings"]) == len(texts)
            return resp.status

        requests = [asyncio.create_task(one(i)) for i in range(40)]
        # Kill once the victim really holds work.
        victim = two_workers[0]
        for _ in range(500):
            held = [w for w in gw.workers.workers() if w.worker_id == "fo-0" and w.inflight]
            if held:
                break
            await asyncio.sleep(0.01)
        assert held, "the victim never got a job"
        victim.kill()
        statuses = await asyncio.gather(*requests)
        assert statuses == [200] * 40
        assert await gw.metric("akidb_jobs_requeued_total") >= 1
        assert gw.workers.live_workers("all-MiniLM-L6-v2") == 1
