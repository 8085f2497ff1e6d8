"""A stalled worker (SIGSTOP: a machine that sleeps, a network that hangs), with another one serving.

Its jobs are requeued at heartbeat expiry and every request still succeeds, each within expiry plus about
one job; after SIGCONT it re-registers, and what it sends for jobs that were requeued meanwhile is dropped:
every answer is checked against the vector its own text has.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import numpy as np
import pytest

from tests.support.backends import fastest_backend
from tests.support.live import LiveClient, ready
from tests.support.processes import GatewayProcess, WorkerProcess

pytestmark = pytest.mark.slow
MODEL = "all-MiniLM-L6-v2"
# GatewayProcess and WorkerProcess beat every 200 ms, 5 missed beats: a silent worker expires after ~1 s.
EXPIRY_S = 1.0
WORST_ALLOWED_S = EXPIRY_S + 6.0  # expiry + one job + a loaded 2-core machine's slack
TOPICS = ["volcano", "violin", "tax law", "sourdough", "chess", "glacier", "cycling", "quantum", "poetry", "malaria"]
TEXTS = [f"{topic}: fact number {i} about {topic} and nothing else" for i in range(6) for topic in TOPICS]


@pytest.fixture
def two_workers(endpoint: str) -> Iterator[list[WorkerProcess]]:
    workers = [WorkerProcess(endpoint, "--backend", fastest_backend(), "--worker-id", f"st-{i}") for i in range(2)]
    yield workers
    for w in workers:
        w.proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        w.stop()


async def live_workers(client: LiveClient) -> int:
    models = (await client.ok("GET", "/models"))["models"]
    return next((m["workers"] for m in models if m["name"] == MODEL), 0)


async def until_workers(client: LiveClient, count: int, within_s: float = 90) -> None:
    end = time.monotonic() + within_s
    while await live_workers(client) != count:
        assert time.monotonic() < end, f"not {count} workers after {within_s} s"
        await asyncio.sleep(0.1)


async def test_a_stopped_worker_loses_no_request_and_its_late_results_are_dropped(
    endpoint: str, two_workers: list[WorkerProcess], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # The embedding cache off: this test is about jobs, and repeated texts would never leave the gateway.
    gateway = GatewayProcess(
        endpoint, str(tmp_path), "--set", "server.request_timeout_s=20", "--set", "cache.max_bytes=0"
    )
    try:
        async with ready(gateway) as client:
            await until_workers(client, 2)
            reference = np.array((await client.ok("POST", "/embed", {"texts": TEXTS}))["embeddings"])
            took: list[float] = []
            wrong: list[str] = []
            stop = asyncio.Event()

            async def load(c: int) -> None:
                n = 0
                while not stop.is_set():
                    picks = [(c * 7 + n * 3 + j * 11) % len(TEXTS) for j in range(8)]
                    started = time.monotonic()
                    status, body = await client.call("POST", "/embed", {"texts": [TEXTS[i] for i in picks]})
                    took.append(time.monotonic() - started)
                    assert status == 200, body
                    got = np.array(body["embeddings"])
                    nearest = (got @ reference.T).argmax(axis=1)
                    wrong.extend(
                        f"{TEXTS[i]!r} got {TEXTS[k]!r}" for i, k in zip(picks, nearest, strict=True) if i != k
                    )
                    n += 1

            clients = [asyncio.create_task(load(c)) for c in range(6)]
            await asyncio.sleep(1.0)
            victim = two_workers[0]
            victim.proc.send_signal(signal.SIGSTOP)
            stopped_at = time.monotonic()
            await until_workers(client, 1, within_s=10)
            expired_after = time.monotonic() - stopped_at
            await asyncio.sleep(2.0)  # served by the other worker alone
            victim.proc.send_signal(signal.SIGCONT)  # it now sends results for jobs that were requeued
            await until_workers(client, 2, within_s=15)
            await asyncio.sleep(2.0)  # both serve again
            stop.set()
            await asyncio.gather(*clients)
            requeued = await client.metric("akidb_jobs_requeued_total")
    finally:
        assert gateway.stop() == 0, gateway.output()[-3000:]
    worst = max(took)
    stale = gateway.output().count('"stale_reply_dropped"')  # late results seen and dropped (timing decides how many)
    print(f"\nSIGSTOP: {len(took)} requests, 0 failed, worst {worst:.2f} s, expired after {expired_after:.2f} s, "
          f"{stale} late results dropped")  # fmt: skip
    assert not wrong, wrong[:5]
    assert requeued and requeued >= 1, "the stopped worker held no job: the test proved nothing"
    assert worst < WORST_ALLOWED_S, f"worst request took {worst:.2f} s"
