"""The transport on real sockets: only what a socket shows. The policy's tables are in test_dispatch.py."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.support.fake_worker import FakeWorker
from tests.support.gateway import Gateway, eventually

MODEL = "all-MiniLM-L6-v2"


async def embed(gw: Gateway, texts: list[str], **extra: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    resp = await gw.client.post("/embed", json={"texts": texts, **extra})
    return resp.status, await resp.json()


async def test_a_split_request_round_trips_over_two_workers_as_float32_rows_in_order(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway("batching.max_batch_size=32") as gw:
        workers = [await FakeWorker(endpoint, f"fake-{i}", capacity=2).start() for i in range(2)]
        await gw.wait_for_workers(2)
        texts = [f"{i:02d}" + "x" * (i % 7) for i in range(70)]  # distinct: the cache would send a repeat once
        status, body = await embed(gw, texts)
        assert status == 200
        np.testing.assert_array_equal(np.array(body["embeddings"])[:, 0], [len(t) for t in texts])
        assert body["usage"]["total_tokens"] == 3 * 70
        assert sorted(len(j.texts) for w in workers for j in w.jobs) == [6, 32, 32]
        assert all(w.jobs for w in workers)  # spread over both workers
        for w in workers:
            await w.close()


async def test_ready_and_models_follow_workers_coming_and_going(gw: Gateway, endpoint: str) -> None:
    status, body = await embed(gw, ["x"])
    assert status == 503 and body["error"]["code"] == "no_worker"
    assert (await gw.client.get("/ready")).status == 503
    worker = await FakeWorker(endpoint).start()
    await gw.wait_for_workers(1)
    assert (await gw.client.get("/ready")).status == 200
    (row,) = (await (await gw.client.get("/models")).json())["models"]
    assert row["name"] == MODEL and row["workers"] == 1 and row["dimension"] == 4
    assert row["backend"] == "fake" and row["default"] is True
    status, body = await embed(gw, ["x"], model="no-such-model")
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, body = await embed(gw, ["x"], model="minilm")  # an alias the worker announced
    assert status == 200 and body["model"] == MODEL
    await worker.close(goodbye=True)
    await eventually(lambda: gw.workers.live_workers(MODEL) == 0)
    assert (await gw.client.get("/ready")).status == 503  # back to 503 when the last one leaves


async def test_a_vanished_peer_is_unreachable_and_its_job_goes_to_another(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    # Liveness far longer than the test: only ROUTER_MANDATORY's refusal can reveal the loss.
    async with start_gateway("heartbeat.liveness=100") as gw:
        doomed = await FakeWorker(endpoint, "doomed", delay=5.0).start()
        await gw.wait_for_workers(1)
        request = asyncio.create_task(embed(gw, ["survives"]))
        await eventually(lambda: bool(doomed.jobs))
        await doomed.close()  # its socket closes: no goodbye, no more heartbeats
        spare = await FakeWorker(endpoint, "spare").start()
        status, body = await request
        assert status == 200 and body["embeddings"][0][0] == len("survives")
        assert len(spare.jobs) == 1
        assert await gw.metric("akidb_workers_expired_total") == 0
        assert await gw.metric("akidb_jobs_requeued_total") == 1
        await spare.close()


async def test_the_gateway_says_disconnect_to_its_workers_when_it_stops(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    worker = FakeWorker(endpoint)
    async with start_gateway() as gw:
        await worker.start()
        await gw.wait_for_workers(1)
    await eventually(lambda: "gateway shutting down" in worker.disconnects)
    await worker.close()


async def test_two_workers_with_one_worker_id_both_serve(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway("batching.batch_timeout_ms=0") as gw:
        twins = [await FakeWorker(endpoint, "twin", capacity=1, delay=0.2).start() for _ in range(2)]
        await gw.wait_for_workers(2)  # one identity each: neither steals the other's
        (row,) = (await (await gw.client.get("/models")).json())["models"]
        assert row["workers"] == 2
        results = await asyncio.gather(*(embed(gw, [f"t{i}"]) for i in range(4)))
        assert [s for s, _ in results] == [200] * 4
        assert all(t.jobs for t in twins)
        for t in twins:
            await t.close()


async def test_a_mixed_request_over_a_real_socket_sends_the_worker_only_the_new_texts(
    gw: Gateway, endpoint: str
) -> None:
    worker = await FakeWorker(endpoint).start()
    await gw.wait_for_workers(1)
    first = await gw.client.post("/embed", json={"texts": ["one", "two"]})
    assert first.status == 200
    resp = await gw.client.post("/embed", json={"texts": ["three", "one", "two", "four five"]})
    body = await resp.json()
    assert resp.status == 200 and [j.texts for j in worker.jobs] == [("one", "two"), ("three", "four five")]
    assert body["usage"]["total_tokens"] == 3 + 3 + 3 + 4  # the fake's count: words + 2, hits included
    np.testing.assert_array_equal(np.array(body["embeddings"])[:, 0], [5, 3, 3, 9])
    await worker.close()
