"""Two worker processes started under one --worker-id (two hosts with one host name) both serve."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import eventually, make_config, running_gateway
from tests.support.processes import FakeWorkerProcess

MODEL = "all-MiniLM-L6-v2"


@pytest.fixture
def twins(endpoint: str) -> Iterator[list[FakeWorkerProcess]]:
    procs = [FakeWorkerProcess(endpoint, "--worker-id", "mac-w0", "--delay", "0.02") for _ in range(2)]
    yield procs
    for p in procs:
        p.stop()


async def test_both_serve_and_kill_9_of_one_under_load_fails_no_request(
    endpoint: str, twins: list[FakeWorkerProcess], tmp_path: Path
) -> None:
    async with running_gateway(make_config(endpoint, str(tmp_path), "server.request_timeout_s=30")) as gw:
        await gw.wait_for_workers(2, timeout=30)
        (row,) = (await (await gw.client.get("/models")).json())["models"]
        assert row["workers"] == 2
        assert sorted(w.pid for w in gw.workers.workers()) == sorted(t.pid for t in twins)

        async def one(i: int) -> int:
            resp = await gw.client.post("/embed", json={"texts": [f"request {i}"]})
            return resp.status

        calls = []
        for i in range(300):  # a steady stream; one of the pair is killed a third of the way in
            calls.append(asyncio.create_task(one(i)))
            if i == 100:
                twins[0].kill()
            await asyncio.sleep(0.005)
        assert await asyncio.gather(*calls) == [200] * 300
        await eventually(lambda: gw.workers.live_workers(MODEL) == 1)
        assert [w.pid for w in gw.workers.workers()] == [twins[1].pid]
