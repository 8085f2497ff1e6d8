"""Re-embedding a MiniLM collection to the tiny Qwen3 model, with both served by real workers.

The dimension changes (384 -> 64), so a vector of either model in the wrong index could not go unnoticed.
Pages are small here (max_batch_size 4: 16 texts a page), so the job is still running while the test
searches, inserts and deletes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.support import references as refs
from tests.support.backends import fastest_backend
from tests.support.engines import BOTH_ENGINES
from tests.support.gateway import Gateway, make_config, running_gateway
from tests.support.processes import GatewayProcess, WorkerProcess, free_port

QWEN = "tiny-qwen3"
MINILM = "all-MiniLM-L6-v2"
SMALL_PAGES = "batching.max_batch_size=4"
# Every test here holds for both engines: the same job API, whichever stores the jobs (on PostgreSQL,
# leased to the gateway that runs them; tests/faults/test_postgres_gateways.py kills one mid-job).
pytestmark = [BOTH_ENGINES]
TOPICS = ["databases", "cooking", "astronomy", "football", "gardening", "music", "finance", "sailing"]


def corpus(n: int, prefix: str = "d") -> list[dict[str, Any]]:
    return [
        # The prefix in the text too: two documents with one text tie in a search, and engines break ties differently.
        {"id": f"{prefix}{i}", "text": f"{prefix} document {i} about {TOPICS[i % len(TOPICS)]}, part {i // 8}"}
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def endpoint() -> str:
    """Its own endpoint: the Qwen3 worker must not show up in other tests' gateways."""
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def workers(endpoint: str) -> Iterator[dict[str, WorkerProcess]]:
    started = {
        MINILM: WorkerProcess(endpoint, "--backend", fastest_backend()),  # the job, not the engine, is tested
        QWEN: WorkerProcess(endpoint, "--backend", "mlx", "--model-path", str(refs.TINY_QWEN3)),
    }
    yield started
    for worker in started.values():
        worker.stop()


@pytest.fixture
async def gateway(  # type: ignore[no-untyped-def]
    endpoint: str, workers: dict[str, WorkerProcess], tmp_path, engine_settings: tuple[str, ...]
) -> AsyncIterator[Gateway]:
    cfg = make_config(endpoint, str(tmp_path), SMALL_PAGES, "storage.index_dtype=f32", *engine_settings)
    async with running_gateway(cfg) as gw:
        for name, worker in workers.items():
            try:
                await gw.wait_for_workers(1, model=name)
            except TimeoutError:
                pytest.fail(f"{name} worker did not connect; its log:\n{worker.output()[-3000:]}")
        yield gw


async def make_collection(client: Any, n: int) -> None:
    resp = await client.post("/collections", json={"name": "c", "model": MINILM})
    assert resp.status == 201, await resp.text()
    docs = corpus(n)
    for start in range(0, n, 100):
        resp = await client.post("/collections/c/documents", json={"documents": docs[start : start + 100]})
        assert resp.status == 201, await resp.text()


async def job_status(client: Any, job_id: str) -> dict[str, Any]:
    resp = await client.get(f"/collections/c/jobs/{job_id}")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def until_finished(client: Any, job_id: str, timeout: float = 180) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while (status := await job_status(client, job_id))["state"] == "running":
        assert loop.time() < end, f"job still running after {timeout}s: {status}"
        await asyncio.sleep(0.2)
    return status


async def embedded(client: Any, model: str, texts: list[str]) -> np.ndarray:
    resp = await client.post("/embed", json={"texts": texts, "model": model, "input_type": "document"})
    assert resp.status == 200, await resp.text()
    return np.array((await resp.json())["embeddings"], dtype=np.float32)


async def stored_vector(client: Any, doc_id: str) -> np.ndarray:
    resp = await client.get(f"/collections/c/documents/{doc_id}?include_vector=true")
    assert resp.status == 200, await resp.text()
    return np.array((await resp.json())["vector"], dtype=np.float32)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


async def test_reembed_switches_model_and_dimension_while_serving(gateway: Gateway) -> None:
    client = gateway.client
    await make_collection(client, 1000)
    resp = await client.post("/collections/c/reembed", json={"model": QWEN})
    assert resp.status == 202, await resp.text()
    job = await resp.json()
    assert (job["state"], job["dimension"], job["total"]) == ("running", 64, 1000)
    again = await client.post("/collections/c/reembed", json={"model": QWEN})
    assert again.status == 409, await again.text()

    # While it runs: searches embed with the old model; inserts and deletes go in.
    resp = await client.post("/collections/c/search", json={"query": "astronomy", "k": 3})
    assert resp.status == 200, await resp.text()
    during = await job_status(client, job["id"])
    assert during["state"] == "running", "the job ended before the test could use the collection during it"
    described = await (await client.get("/collections/c")).json()
    assert (described["model"], described["dimension"]) == (MINILM, 384)
    resp = await client.post("/collections/c/documents", json={"documents": corpus(30, prefix="late")})
    assert resp.status == 201, await resp.text()
    assert (await client.delete("/collections/c/documents/d7")).status == 200
    assert (await client.delete("/collections/c/documents/late3")).status == 200

    final = await until_finished(client, job["id"])
    assert final["state"] == "done", final
    assert final["done"] >= 1029 and final["error"] is None
    described = await (await client.get("/collections/c")).json()
    assert (described["model"], described["dimension"], described["document_count"]) == (QWEN, 64, 1028)

    # Every document now holds the new model's vector of its text, late inserts included.
    ids = ["d0", "d999", "late0", "late29"]
    texts = [(await (await client.get(f"/collections/c/documents/{i}")).json())["text"] for i in ids]
    expected = unit(await embedded(client, QWEN, texts))
    got = np.stack([await stored_vector(client, i) for i in ids])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (await client.get("/collections/c/documents/d7")).status == 404

    # Search embeds with the new model: a document's own text finds it first.
    resp = await client.post("/collections/c/search", json={"query": texts[2], "k": 1})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["results"][0]["id"] == "late0"


async def test_cancel_leaves_the_collection_as_it_was(gateway: Gateway) -> None:
    client = gateway.client
    await make_collection(client, 300)
    before = await stored_vector(client, "d5")
    job = await (await client.post("/collections/c/reembed", json={"model": QWEN})).json()
    resp = await client.delete(f"/collections/c/jobs/{job['id']}")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "cancelled"
    assert (await client.delete(f"/collections/c/jobs/{job['id']}")).status == 409
    described = await (await client.get("/collections/c")).json()
    assert (described["model"], described["dimension"], described["document_count"]) == (MINILM, 384, 300)
    np.testing.assert_array_equal(await stored_vector(client, "d5"), before)
    resp = await client.post("/collections/c/search", json={"query": "document 5 about", "k": 2})
    assert resp.status == 200, await resp.text()
    assert (await client.get("/collections/c/jobs/job_nope")).status == 404
    # A new job can start after a cancelled one, and finishes.
    job = await (await client.post("/collections/c/reembed", json={"model": QWEN})).json()
    assert (await until_finished(client, job["id"]))["state"] == "done"


async def test_vector_only_documents_refuse_the_job_unless_dropped(gateway: Gateway) -> None:
    client = gateway.client
    await make_collection(client, 20)
    vector = [0.0] * 383 + [1.0]
    for doc_id in ("v1", "v2"):
        resp = await client.post("/collections/c/documents", json={"id": doc_id, "vector": vector})
        assert resp.status == 201, await resp.text()
    resp = await client.post("/collections/c/reembed", json={"model": QWEN})
    assert resp.status == 400
    assert "2 document(s)" in (await resp.json())["error"]["message"]
    resp = await client.post("/collections/c/reembed", json={"model": QWEN, "drop_vector_only": True})
    assert resp.status == 202, await resp.text()
    final = await until_finished(client, (await resp.json())["id"])
    assert (final["state"], final["dropped"], final["vector_only"]) == ("done", 2, 2)
    assert (await client.get("/collections/c/documents/v1")).status == 404
    described = await (await client.get("/collections/c")).json()
    assert (described["document_count"], described["dimension"]) == (20, 64)


async def test_unknown_model_is_refused(gateway: Gateway) -> None:
    await make_collection(gateway.client, 1)
    resp = await gateway.client.post("/collections/c/reembed", json={"model": "nope"})
    # 409, not 404: on this route a 404 says the collection is missing.
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "model_not_served", await resp.text()


async def test_job_survives_a_worker_restart(
    gateway: Gateway, endpoint: str, workers: dict[str, WorkerProcess]
) -> None:
    client = gateway.client
    await make_collection(client, 1000)
    job = await (await client.post("/collections/c/reembed", json={"model": QWEN})).json()
    workers[QWEN].kill()  # mid-job: the page in flight fails, and the job retries it (503 no worker)
    await asyncio.sleep(2)
    during = await job_status(client, job["id"])
    assert during["state"] == "running" and during["done"] < 1000, during
    workers[QWEN] = WorkerProcess(endpoint, "--backend", "mlx", "--model-path", str(refs.TINY_QWEN3))
    final = await until_finished(client, job["id"])
    assert final["state"] == "done", final
    assert final["done"] == 1000


# -- a real gateway process, stopped (SIGTERM) and killed (kill -9) mid-job --------------------


async def metric(session: aiohttp.ClientSession, url: str, name: str) -> float:
    async with session.get(url + "/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


async def ready(session: aiohttp.ClientSession, gw: GatewayProcess, timeout: float = 90) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        try:
            async with session.get(gw.url + "/models") as resp:
                names = {m["name"] for m in (await resp.json())["models"] if m["workers"]}
                if {MINILM, QWEN} <= names:
                    return
        except (aiohttp.ClientError, KeyError, TypeError):
            pass
        if loop.time() > end:
            raise AssertionError(f"gateway not ready; its log:\n{gw.output()[-3000:]}")
        await asyncio.sleep(0.2)


async def progress_past(session: aiohttp.ClientSession, url: str, job_id: str, done: int) -> dict[str, Any]:
    for _ in range(1200):
        async with session.get(f"{url}/collections/c/jobs/{job_id}") as resp:
            status = dict(await resp.json())
        if status["done"] >= done or status["state"] != "running":
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"no progress past {done}: {status}")


async def test_job_resumes_after_sigterm_and_kill_9(  # type: ignore[no-untyped-def]
    endpoint: str, workers: dict[str, WorkerProcess], tmp_path, engine_settings: tuple[str, ...]
) -> None:
    data = str(tmp_path / "data")
    # On PostgreSQL the restarted gateway takes the job up once the killed one's lease lapses: a short one.
    leased = ("storage.postgres.job_lease_s=2",) if engine_settings else ()
    args = tuple(a for kv in (SMALL_PAGES, *engine_settings, *leased) for a in ("--set", kv))
    n = 1500
    gw = GatewayProcess(endpoint, data, *args)
    try:
        async with aiohttp.ClientSession() as session:
            await ready(session, gw)
            async with session.post(gw.url + "/collections", json={"name": "c", "model": MINILM}) as resp:
                assert resp.status == 201, await resp.text()
            docs = corpus(n)
            for start in range(0, n, 100):
                async with session.post(
                    gw.url + "/collections/c/documents", json={"documents": docs[start : start + 100]}
                ) as resp:
                    assert resp.status == 201, await resp.text()
            async with session.post(gw.url + "/collections/c/reembed", json={"model": QWEN}) as resp:
                assert resp.status == 202, await resp.text()
                job_id = (await resp.json())["id"]

            first = await progress_past(session, gw.url, job_id, 48)
            assert first["state"] == "running", "the job finished before the first stop"
            assert gw.stop() == 0  # SIGTERM: the job stops where it is

            gw = GatewayProcess(endpoint, data, *args, port=gw.port)
            await ready(session, gw)
            second = await progress_past(session, gw.url, job_id, first["done"] + 48)
            assert second["resumed_from"] >= first["done"], (first, second)
            assert second["state"] == "running", f"the job finished before the kill: {second}"
            gw.kill()  # kill -9 mid-job
            gw.log.close()

            gw = GatewayProcess(endpoint, data, *args, port=gw.port)
            await ready(session, gw)
            for _ in range(1800):
                async with session.get(f"{gw.url}/collections/c/jobs/{job_id}") as resp:
                    assert resp.status == 200, f"{resp.status} {await resp.text()}\n{gw.output()[-4000:]}"
                    final = dict(await resp.json())
                if final["state"] != "running":
                    break
                await asyncio.sleep(0.1)
            assert final["state"] == "done", f"{final}"
            assert final["resumed_from"] >= second["done"], (second, final)
            async with session.get(gw.url + "/collections/c") as resp:
                described = await resp.json()
            assert (described["model"], described["dimension"], described["document_count"]) == (QWEN, 64, n)
            # This process embedded exactly the documents the killed one had not committed: none twice.
            texts = await metric(session, gw.url, "akidb_reembed_texts_total")
            assert texts == n - final["resumed_from"], final
    finally:
        gw.stop()
