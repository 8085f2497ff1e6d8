"""A worker that outlives its gateway must not answer the next gateway's jobs with the old ones' rows."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.support.backends import ONE_BACKEND
from tests.support.gateway import make_config, running_gateway
from tests.support.processes import WorkerProcess

# Not about the embedding backend: run once, on the fastest installed one.
pytestmark = ONE_BACKEND

TEXTS = ["hello world", "Machine learning is fun"]
BUSY = [f"text {i}: " + "a fairly long sentence that keeps the worker busy " * 4 for i in range(64)]


async def test_replies_for_a_previous_gateway_are_not_taken_for_new_jobs(
    zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    async with running_gateway(make_config(zmq_endpoint, str(tmp_path))) as first:
        await first.wait_for_workers(1)
        call = asyncio.ensure_future(first.client.post("/embed", json={"texts": BUSY}))
        for _ in range(2000):  # until the worker holds jobs of this gateway's numbering
            if first.dispatcher.jobs:
                break
            await asyncio.sleep(0.005)
        assert first.dispatcher.jobs, "no job was dispatched within 10 s"
        call.cancel()
    # The worker is still computing those jobs when it reconnects to a new gateway.
    async with running_gateway(make_config(zmq_endpoint, str(tmp_path))) as second:
        await second.wait_for_workers(1)
        resp = await second.client.post("/embed", json={"texts": TEXTS})
        assert resp.status == 200, await resp.text()
        got = np.array((await resp.json())["embeddings"], dtype=np.float32)
        await asyncio.sleep(1.0)  # the old jobs are surely done now
        again = await second.client.post("/embed", json={"texts": TEXTS})
        np.testing.assert_array_equal(got, np.array((await again.json())["embeddings"], dtype=np.float32))
