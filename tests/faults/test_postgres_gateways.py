"""Two gateway processes on one PostgreSQL, one worker serving both: kill -9 one of them.

(a) While clients (akidb_client given both URLs) upsert with ids and search through both gateways: no
acknowledged document is lost, every call goes on through the survivor, and the survivor answers no 5xx.
(b) While the killed gateway runs a re-embedding job: the survivor takes it over within two leases and
finishes it, every document with exactly one vector of the new model.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import psycopg
import pytest

from tests.support import references as refs
from tests.support.backends import fastest_backend
from tests.support.client import AsyncAkiDB
from tests.support.live import LiveClient, ready
from tests.support.postgres import fresh_database, start_postgres
from tests.support.processes import GatewayProcess, WorkerProcess, free_port

pytestmark = pytest.mark.slow
MINILM = "all-MiniLM-L6-v2"
QWEN = "tiny-qwen3"
LEASE_S = 5.0
# The machine is loaded on purpose here: a few late heartbeats must not drop the worker, or the
# survivor would answer 503 for want of a worker, which is not what is tested.
PATIENT = ("heartbeat.liveness=25", "server.request_timeout_s=60")


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_postgres(tmp_path_factory.mktemp("pg"))


@pytest.fixture(scope="module")
def endpoints() -> list[str]:
    return [f"tcp://127.0.0.1:{free_port()}" for _ in range(2)]


@pytest.fixture(scope="module")
def workers(endpoints: list[str]) -> Iterator[dict[str, WorkerProcess]]:
    """MiniLM and the tiny Qwen3, each one process with both gateways in its `zmq.connect`."""
    sets = ("--set", PATIENT[0])
    both = ",".join(endpoints)
    started = {
        MINILM: WorkerProcess(both, "--backend", fastest_backend(), *sets),
        QWEN: WorkerProcess(both, "--backend", "mlx", "--model-path", str(refs.TINY_QWEN3), *sets),
    }
    yield started
    for worker in started.values():
        worker.stop()


@contextlib.contextmanager
def gateways(endpoints: list[str], dsn: str, tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    settings = ("storage.backend=postgres", f"storage.postgres.dsn={dsn}", f"storage.postgres.job_lease_s={LEASE_S}")
    args = [a for kv in (*settings, *PATIENT, "batching.max_batch_size=4") for a in ("--set", kv)]
    procs = [GatewayProcess(ep, str(tmp_path / f"gw{i}"), *args) for i, ep in enumerate(endpoints)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()


async def serving(proc: GatewayProcess, models: set[str]) -> None:
    """Until the gateway answers and sees a worker for every model in `models`."""
    async with ready(proc) as client:
        end = time.monotonic() + 120
        while True:
            status, body = await client.call("GET", "/models")
            if status == 200 and models <= {m["name"] for m in body["models"] if m["workers"]}:
                return
            assert time.monotonic() < end, f"models {models} not served:\n{proc.output()[-3000:]}"
            await asyncio.sleep(0.2)


class Recording(httpx.AsyncHTTPTransport):
    """The client's real transport, noting every response's status by the gateway that sent it."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: dict[str, list[int]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.statuses.setdefault(f"http://{request.url.host}:{request.url.port}", []).append(response.status_code)
        return response


@contextlib.asynccontextmanager
async def client(urls: list[str]) -> AsyncIterator[tuple[AsyncAkiDB, Recording]]:
    recording = Recording()
    async with AsyncAkiDB(urls, transport=recording, timeout=60) as db:
        yield db, recording


async def test_kill_9_one_gateway_loses_no_acknowledged_write(
    pg_server: str, endpoints: list[str], workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    dsn = fresh_database(pg_server)
    with gateways(endpoints, dsn, tmp_path) as (victim, survivor):
        await asyncio.gather(serving(victim, {MINILM}), serving(survivor, {MINILM}))
        async with (
            client([victim.url, survivor.url]) as (first, seen_a),
            client([survivor.url, victim.url]) as (
                second,
                seen_b,
            ),
        ):
            await first.collections.create("c", model=MINILM)
            await until_listed(survivor, "c")
            acked: set[str] = set()
            calls = {"before": 0, "after": 0}
            errors: list[str] = []
            phase = "before"
            stop = asyncio.Event()

            async def load(db: AsyncAkiDB, prefix: str) -> None:
                col = db.collection("c")
                n = 0
                while not stop.is_set():
                    ids = [f"{prefix}{n + i}" for i in range(4)]
                    n += 4
                    try:
                        await col.upsert([{"id": i, "text": f"note {i} about the gateways"} for i in ids])
                        acked.update(ids)
                        await col.search(f"note {prefix}{n - 1}", k=3)
                        calls[phase] += 2
                    except Exception as exc:  # any failure the client did not absorb by failing over
                        errors.append(f"{prefix}: {type(exc).__name__}: {exc}")

            tasks = [asyncio.create_task(load(db, p)) for db, p in ((first, "a"), (second, "b"))]
            await asyncio.sleep(4.0)
            phase = "after"
            victim.kill()
            killed_at = len(acked)
            await asyncio.sleep(8.0)
            stop.set()
            await asyncio.gather(*tasks)

            assert errors == [], errors[:5]
            assert calls["before"] and calls["after"] > 8, calls
            assert len(acked) > killed_at, "no upsert was acknowledged after the kill"
            # Every acknowledged document is in the database, read through the survivor.
            stored: set[str] = set()
            async for doc in second.collection("c").documents(page_size=500):
                stored.add(doc.id)
            assert acked - stored == set(), sorted(acked - stored)[:10]
            survivor_statuses = seen_a.statuses.get(survivor.url, []) + seen_b.statuses.get(survivor.url, [])
            assert survivor_statuses and all(s < 500 for s in survivor_statuses), sorted(set(survivor_statuses))
            print(f"\n{len(acked)} acknowledged ({len(acked) - killed_at} after the kill), calls {calls}")


async def until_listed(proc: GatewayProcess, name: str) -> None:
    async with aiohttp.ClientSession() as session:
        live = LiveClient(session, proc.url)
        end = time.monotonic() + 10
        while (await live.call("GET", f"/collections/{name}"))[0] != 200:
            assert time.monotonic() < end, f"{proc.url} does not list {name!r}"
            await asyncio.sleep(0.1)


async def job_status(live: LiveClient, job_id: str) -> dict[str, Any]:
    return dict(await live.ok("GET", f"/collections/c/jobs/{job_id}"))


async def test_kill_9_the_gateway_running_a_reembedding(
    pg_server: str, endpoints: list[str], workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    dsn = fresh_database(pg_server)
    n = 1500
    with gateways(endpoints, dsn, tmp_path) as (victim, survivor):
        await asyncio.gather(serving(victim, {MINILM, QWEN}), serving(survivor, {MINILM, QWEN}))
        async with aiohttp.ClientSession() as session:
            runner, other = LiveClient(session, victim.url), LiveClient(session, survivor.url)
            await runner.ok("POST", "/collections", {"name": "c", "model": MINILM}, 201)
            texts = {f"d{i}": f"document {i} about leases, fences and gateways, part {i // 8}" for i in range(n)}
            docs = [{"id": k, "text": v} for k, v in texts.items()]
            for start in range(0, n, 100):
                await runner.ok("POST", "/collections/c/documents", {"documents": docs[start : start + 100]}, 201)
            job = await runner.ok("POST", "/collections/c/reembed", {"model": QWEN}, 202)
            while (status := await job_status(other, job["id"]))["done"] < 48:
                assert status["state"] == "running", status
                await asyncio.sleep(0.05)

            victim.kill()  # mid-job, holding the lease
            killed = time.monotonic()
            at_kill = await job_status(other, job["id"])
            assert at_kill["state"] == "running" and at_kill["done"] < n, f"the job ended before the kill: {at_kill}"
            # Taken over (`resumed_from` moves to the committed progress) within two leases of the kill.
            while (status := await job_status(other, job["id"]))["resumed_from"] == 0:
                assert time.monotonic() - killed < 2 * LEASE_S, f"not taken over within two leases: {status}"
                await asyncio.sleep(0.1)
            end = time.monotonic() + 300
            while (final := await job_status(other, job["id"]))["state"] == "running":
                assert time.monotonic() < end, final
                await asyncio.sleep(0.2)

            assert final["state"] == "done", final
            assert final["resumed_from"] >= at_kill["done"], (at_kill, final)
            # The survivor embedded exactly what the killed gateway had not committed: nothing twice.
            assert await other.metric("akidb_reembed_texts_total") == n - final["resumed_from"], final
            described = await other.ok("GET", "/collections/c")
            assert (described["model"], described["dimension"], described["document_count"]) == (QWEN, 64, n)
            with psycopg.connect(dsn) as conn:
                col_id = described["id"]
                rows = conn.execute(
                    "SELECT count(*), count(DISTINCT doc_id), min(vector_dims(embedding)), "
                    f'max(vector_dims(embedding)) FROM "akidb_docs_{col_id}"'
                ).fetchone()
                leftovers = conn.execute("SELECT count(*) FROM akidb_reembed_vectors").fetchone()
            assert rows == (n, n, 64, 64) and leftovers == (0,), (rows, leftovers)
            # Each document's one vector is the new model's vector of its own text.
            sample = ["d0", "d47", "d48", "d777", f"d{n - 1}"]
            got = np.array(
                [(await other.ok("GET", f"/collections/c/documents/{i}?include_vector=true"))["vector"] for i in sample]
            )
            want = await other.ok(
                "POST", "/embed", {"texts": [texts[i] for i in sample], "model": QWEN, "input_type": "document"}
            )
            expected = np.array(want["embeddings"], dtype=np.float32)
            expected /= np.linalg.norm(expected, axis=1, keepdims=True)
            np.testing.assert_allclose(got, expected, atol=1e-4)
