"""Durability with the gateway as a real process: clean restarts, kill -9 mid-stream, one owner per data dir."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest

from tests.support.backends import ONE_BACKEND
from tests.support.live import ready
from tests.support.processes import GatewayProcess, WorkerProcess, free_port

# Not about the embedding backend: run once, on the fastest installed one.
pytestmark = [pytest.mark.slow, ONE_BACKEND]
# The session worker beats every 200 ms; on a busy 2-core machine a few beats can come late, and a
# gateway that drops the worker mid-test answers 503. These tests are about storage: be patient.
PATIENT = ("--set", "heartbeat.liveness=25")
QUERIES = [np.random.default_rng(500 + i).standard_normal(384).astype(np.float32).tolist() for i in range(5)]


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        """One request; a 503 (the shared worker reconnecting between tests) is retried, as clients should."""
        for _ in range(100):
            kwargs: dict[str, Any] = {}
            if body is not None:
                kwargs = {"data": io.BytesIO(orjson.dumps(body)), "headers": {"Content-Type": "application/json"}}
            async with self.session.request(method, self.url + path, **kwargs) as resp:
                text = await resp.text()
                if resp.status == 503 and status != 503:
                    await asyncio.sleep(0.1)
                    continue
                assert resp.status == status, text
                return json.loads(text)
        raise AssertionError(f"{method} {path}: still 503 after 10 s: {text}")


@contextlib.asynccontextmanager
async def started(proc: GatewayProcess, within_s: float = 90) -> AsyncIterator[Client]:
    """A client once the gateway process answers /ready (its worker has reconnected)."""
    async with ready(proc, within_s) as live:
        yield Client(live.session, live.url)


def vector(seed: int) -> list[float]:
    return np.random.default_rng(seed).standard_normal(384).astype(np.float32).tolist()


async def snapshot_of(client: Client, name: str) -> dict[str, Any]:
    """Everything observable about a collection: its documents (with vectors) and some searches."""
    docs = await client.call("GET", f"/collections/{name}/documents?limit=1000&include_vector=true")
    searches = [await client.call("POST", f"/collections/{name}/search", {"vector": q, "k": 10}) for q in QUERIES]
    searches.append(await client.call("POST", f"/collections/{name}/search", {"query": "about topic 3", "k": 5}))
    searches.append(
        await client.call("POST", f"/collections/{name}/search", {"vector": QUERIES[0], "filter": {"g": 2}})
    )
    for s in searches:
        del s["took_ms"]
    return {"docs": docs, "searches": searches}


async def fill(client: Client, name: str) -> None:
    await client.call("POST", "/collections", {"name": name}, 201)
    docs = [{"id": f"v{i}", "vector": vector(i), "metadata": {"g": i % 5}} for i in range(150)]
    await client.call("POST", f"/collections/{name}/documents", {"documents": docs}, 201)
    texts = [{"id": f"t{i}", "text": f"a short note about topic {i}", "metadata": {"g": i % 5}} for i in range(10)]
    await client.call("POST", f"/collections/{name}/documents", {"documents": texts}, 201)
    for i in range(3):
        await client.call("DELETE", f"/collections/{name}/documents/v{i}")
    await client.call("POST", f"/collections/{name}/documents", {"id": "v10", "vector": vector(999)}, 201)


async def test_a_clean_restart_keeps_documents_and_search_results(
    zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path: Path
) -> None:
    args = ("--set", "storage.snapshot_every=100", *PATIENT)
    first = GatewayProcess(zmq_endpoint, str(tmp_path), *args)
    try:
        async with started(first) as client:
            await fill(client, "keep")
            before = await snapshot_of(client, "keep")
    finally:
        assert first.stop() == 0, first.output()[-3000:]
    assert "index_snapshot_saved" in first.output()
    second = GatewayProcess(zmq_endpoint, str(tmp_path), *args)
    try:
        async with started(second) as client:
            assert await snapshot_of(client, "keep") == before
            assert before["docs"]["total"] == 157
    finally:
        second.stop()
    opened = [json.loads(line) for line in second.output().splitlines() if '"collection_opened"' in line]
    assert opened[0]["replayed"] == 0 and opened[0]["snapshot"].startswith("index-")  # loaded, not rebuilt


async def test_kill_9_mid_stream_loses_no_acknowledged_document(
    zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path: Path
) -> None:
    # Snapshots every 64 changes, so the kill lands between, or during, snapshot saves.
    args = ("--set", "storage.snapshot_every=64", *PATIENT)
    first = GatewayProcess(zmq_endpoint, str(tmp_path), *args)
    acked: dict[str, list[float]] = {}
    try:
        async with started(first) as client:
            await fill(client, "fixed")
            before = await snapshot_of(client, "fixed")
            await client.call("POST", "/collections", {"name": "stream"}, 201)

            async def writer(w: int) -> None:
                for b in range(10_000):
                    docs = [{"id": f"w{w}-{b}-{i}", "vector": vector(w * 10**6 + b * 10 + i)} for i in range(5)]
                    try:
                        await client.call("POST", "/collections/stream/documents", {"documents": docs}, 201)
                    except (aiohttp.ClientError, AssertionError):
                        return  # the gateway is gone: this batch was never acknowledged
                    acked.update((d["id"], d["vector"]) for d in docs)
                    if len(acked) >= 400:
                        enough.set()

            enough = asyncio.Event()
            writers = [asyncio.create_task(writer(w)) for w in range(4)]
            await enough.wait()
            first.kill()  # while the writers' next batches are in flight
            await asyncio.gather(*writers)
    finally:
        first.stop()
    second = GatewayProcess(zmq_endpoint, str(tmp_path), *args)
    try:
        async with started(second) as client:
            assert await snapshot_of(client, "fixed") == before
            stored: dict[str, list[float]] = {}
            cursor: str | None = "0"
            while cursor is not None:
                page = await client.call("GET", f"/collections/stream/documents?after={cursor}&include_vector=true")
                stored.update((d["id"], d["vector"]) for d in page["documents"])
                cursor = page["next"]
            missing = set(acked) - set(stored)
            assert not missing, f"{len(missing)} acknowledged documents lost, e.g. {sorted(missing)[:5]}"
            for doc_id in list(acked)[:: max(1, len(acked) // 50)]:
                sent = np.array(acked[doc_id], dtype=np.float32)
                np.testing.assert_allclose(stored[doc_id], sent / np.linalg.norm(sent), rtol=1e-5, atol=1e-6)
                hit = await client.call("POST", "/collections/stream/search", {"vector": acked[doc_id], "k": 1})
                assert hit["results"][0]["id"] == doc_id
    finally:
        second.stop()


async def test_a_second_gateway_on_the_same_data_dir_refuses_to_start(
    zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path: Path
) -> None:
    first = GatewayProcess(zmq_endpoint, str(tmp_path))
    try:
        async with started(first):
            second = GatewayProcess(f"tcp://127.0.0.1:{free_port()}", str(tmp_path))
            assert second.proc.wait(timeout=60) == 1
            out = second.output()
            assert "is in use by another gateway" in out and f"pid {first.proc.pid}" in out
            assert "Traceback" not in out
            second.stop()
    finally:
        first.stop()
