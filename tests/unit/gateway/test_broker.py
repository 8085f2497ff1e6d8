"""Batching, dispatch, backpressure and failover, against fake workers on real sockets."""

from __future__ import annotations

import asyncio
import time

import msgpack
import numpy as np

from shared.codec import MAGIC
from shared.protocol import PROTOCOL_VERSION, Error, ErrorCode, MsgType
from tests.support.fake_worker import FakeWorker
from tests.support.gateway import Gateway, eventually


async def embed(gw: Gateway, texts: list[str], **extra: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    resp = await gw.client.post("/embed", json={"texts": texts, **extra})
    return resp.status, await resp.json()


async def test_lone_request_does_not_wait_for_the_window(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway("batching.batch_timeout_ms=2000") as gw:
        worker = await FakeWorker(endpoint).start()
        await gw.wait_for_workers(1)
        started = time.perf_counter()
        status, body = await embed(gw, ["one text"])
        assert status == 200
        assert time.perf_counter() - started < 1.0  # far below the 2 s window
        assert body["embeddings"] == [[8.0, 1.0, 0.0, 1.0]]
        await worker.close()


async def test_requests_coalesce_while_the_worker_is_busy(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway("batching.batch_timeout_ms=50") as gw:
        worker = await FakeWorker(endpoint, capacity=1, delay=0.3).start()
        await gw.wait_for_workers(1)
        first = asyncio.create_task(embed(gw, ["first"]))
        await asyncio.sleep(0.1)  # the first job is now running
        rest = await asyncio.gather(*(embed(gw, [f"text {i}"]) for i in range(9)), first)
        assert all(status == 200 for status, _ in rest)
        assert [len(j.texts) for j in worker.jobs] == [1, 9]
        # Each caller got its own row back, not a neighbour's.
        for i, (_, body) in enumerate(rest[:9]):
            assert body["embeddings"][0][0] == len(f"text {i}")
        assert await gw.metric("akidb_embedding_batch_size_count", model="all-MiniLM-L6-v2") == 2
        assert await gw.metric("akidb_embedding_batch_size_sum", model="all-MiniLM-L6-v2") == 10
        await worker.close()


async def test_a_full_batch_goes_before_the_window_ends(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway("batching.batch_timeout_ms=5000", "batching.max_batch_size=4") as gw:
        worker = await FakeWorker(endpoint, capacity=2, delay=0.2).start()
        await gw.wait_for_workers(1)
        started = time.perf_counter()
        results = await asyncio.gather(*(embed(gw, [f"t{i}"]) for i in range(5)))
        assert all(s == 200 for s, _ in results)
        assert time.perf_counter() - started < 3.0
        assert sorted(len(j.texts) for j in worker.jobs) == [1, 4]
        await worker.close()


async def test_big_requests_are_split_into_jobs_and_reassembled_in_order(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway("batching.max_batch_size=32") as gw:
        workers = [await FakeWorker(endpoint, f"fake-{i}", capacity=2).start() for i in range(2)]
        await gw.wait_for_workers(2)
        texts = ["x" * (i % 7 + 1) for i in range(70)]
        status, body = await embed(gw, texts)
        assert status == 200
        assert [row[0] for row in body["embeddings"]] == [len(t) for t in texts]
        sizes = sorted(len(j.texts) for w in workers for j in w.jobs)
        assert sizes == [6, 32, 32]
        assert all(w.jobs for w in workers)  # spread over both workers
        for w in workers:
            await w.close()


async def test_least_loaded_worker_gets_the_next_job(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway() as gw:
        slow = await FakeWorker(endpoint, "slow", capacity=4, delay=1.0).start()
        await gw.wait_for_workers(1)  # registered first, so the tie at zero load goes to it
        fast = await FakeWorker(endpoint, "fast", capacity=4, delay=0.0).start()
        await gw.wait_for_workers(2)
        blocker = asyncio.create_task(embed(gw, ["a"]))
        await asyncio.sleep(0.05)
        for i in range(3):
            assert (await embed(gw, [f"b{i}"]))[0] == 200
        assert (await blocker)[0] == 200
        assert len(slow.jobs) == 1 and len(fast.jobs) == 3
        await slow.close()
        await fast.close()


async def test_silent_worker_is_dropped_and_its_job_requeued(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway() as gw:
        doomed = await FakeWorker(endpoint, "doomed", delay=0.5).start()
        await gw.wait_for_workers(1)
        request = asyncio.create_task(embed(gw, ["survives"]))
        await asyncio.sleep(0.1)
        doomed.silent = True  # like kill -9: no result, no heartbeats
        spare = await FakeWorker(endpoint, "spare").start()
        status, body = await request
        assert status == 200 and body["embeddings"][0][0] == len("survives")
        assert len(doomed.jobs) == 1 and len(spare.jobs) == 1
        assert await gw.metric("akidb_workers_expired_total") == 1
        assert await gw.metric("akidb_jobs_requeued_total") == 1
        await doomed.close()
        await spare.close()


async def test_disconnect_requeues_at_once(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway() as gw:
        leaving = await FakeWorker(endpoint, "leaving", delay=5.0).start()
        await gw.wait_for_workers(1)
        request = asyncio.create_task(embed(gw, ["x"]))
        await asyncio.sleep(0.1)
        await leaving.close(goodbye=True)
        await eventually(lambda: gw.broker.live_workers("all-MiniLM-L6-v2") == 0)
        spare = await FakeWorker(endpoint, "spare").start()
        assert (await request)[0] == 200
        assert await gw.metric("akidb_workers_expired_total") == 0  # it said goodbye: no expiry
        await spare.close()


async def test_full_queue_answers_503_with_retry_after(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway("batching.max_queue_texts=4", "server.request_timeout_s=2") as gw:
        worker = await FakeWorker(endpoint, capacity=1, delay=1.0).start()
        await gw.wait_for_workers(1)
        busy = asyncio.create_task(embed(gw, ["running"]))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(embed(gw, ["a", "b", "c", "d"]))
        await asyncio.sleep(0.05)
        resp = await gw.client.post("/embed", json={"texts": ["one too many"]})
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        assert (await resp.json())["error"]["code"] == "queue_full"
        assert (await busy)[0] == 200 and (await queued)[0] == 200
        await worker.close()


async def test_request_past_its_timeout_gets_504_and_frees_its_slot(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway("server.request_timeout_s=0.3", "batching.max_queue_texts=2") as gw:
        worker = await FakeWorker(endpoint, capacity=1, delay=2.0).start()
        await gw.wait_for_workers(1)
        running = asyncio.create_task(embed(gw, ["runs long"]))
        await asyncio.sleep(0.05)
        status, body = await embed(gw, ["waits", "too long"])
        assert status == 504 and body["error"]["code"] == "timeout"
        assert (await running)[0] == 504
        # The timed-out texts left the queue: two more fit now.
        worker.delay = 0.0
        await asyncio.sleep(2.1)
        assert (await embed(gw, ["a", "b"]))[0] == 200
        assert await gw.metric("akidb_embedding_abandoned_total") >= 2
        await worker.close()


async def test_malformed_frames_are_dropped_and_the_gateway_keeps_serving(gw: Gateway, endpoint: str) -> None:
    worker = await FakeWorker(endpoint).start()
    await gw.wait_for_workers(1)
    await worker.send_raw([b"garbage"])
    await worker.send_raw([MAGIC + bytes((PROTOCOL_VERSION + 1, MsgType.HEARTBEAT)), msgpack.packb({})])
    await worker.send_raw([MAGIC + bytes((PROTOCOL_VERSION, MsgType.RESULT)), msgpack.packb({"job_id": 1})])
    status, _ = await embed(gw, ["still fine"])
    assert status == 200
    assert await gw.metric("akidb_protocol_frames_dropped_total") == 3
    await worker.close()


async def test_unknown_worker_is_asked_to_register_again(gw: Gateway, endpoint: str) -> None:
    worker = await FakeWorker(endpoint).start()
    await gw.wait_for_workers(1)
    gw.broker.registry.remove(b"fake-1")  # as if the gateway had restarted
    await eventually(lambda: worker.disconnects >= 1 and gw.broker.live_workers("all-MiniLM-L6-v2") == 1)
    assert (await embed(gw, ["back"]))[0] == 200
    await worker.close()


async def test_worker_error_is_a_502_not_a_500(gw: Gateway, endpoint: str) -> None:
    worker = await FakeWorker(endpoint, delay=10).start()
    await gw.wait_for_workers(1)
    request = asyncio.create_task(embed(gw, ["x"]))
    await eventually(lambda: bool(worker.jobs))
    await worker.send(Error(worker.jobs[0].job_id, ErrorCode.INTERNAL, "out of memory"))
    status, body = await request
    assert status == 502 and body["error"]["code"] == "worker_error"
    assert "out of memory" in body["error"]["message"]
    await worker.close()


async def test_no_worker_is_503_and_unknown_model_is_404(gw: Gateway, endpoint: str) -> None:
    status, body = await embed(gw, ["x"])
    assert status == 503 and body["error"]["code"] == "no_worker"
    assert (await gw.client.get("/ready")).status == 503
    worker = await FakeWorker(endpoint).start()
    await gw.wait_for_workers(1)
    assert (await gw.client.get("/ready")).status == 200
    status, body = await embed(gw, ["x"], model="no-such-model")
    assert status == 404 and body["error"]["code"] == "model_not_found"
    assert "akidb-worker --model no-such-model" in body["error"]["message"]
    status, body = await embed(gw, ["x"], model="minilm")  # an alias the worker announced
    assert status == 200 and body["model"] == "all-MiniLM-L6-v2"
    await worker.close(goodbye=True)
    await eventually(lambda: gw.broker.live_workers("all-MiniLM-L6-v2") == 0)
    assert (await gw.client.get("/ready")).status == 503  # back to 503 when the last one leaves


async def test_models_lists_announced_models_with_live_counts(gw: Gateway, endpoint: str) -> None:
    worker = await FakeWorker(endpoint).start()
    await gw.wait_for_workers(1)
    body = await (await gw.client.get("/models")).json()
    (row,) = body["models"]
    assert row["name"] == "all-MiniLM-L6-v2" and row["workers"] == 1 and row["dimension"] == 4
    assert row["backend"] == "fake" and row["default"] is True
    await worker.close()


async def test_results_are_float32_rows(gw: Gateway, endpoint: str) -> None:
    worker = await FakeWorker(endpoint).start()
    await gw.wait_for_workers(1)
    status, body = await embed(gw, ["abc", "de"])
    assert status == 200
    np.testing.assert_array_equal(np.array(body["embeddings"])[:, 0], [3, 2])
    assert body["usage"]["total_tokens"] == 3 + 3
    await worker.close()


async def test_normalize_defaults_to_the_config_and_requests_override_it(start_gateway, endpoint) -> None:  # type: ignore[no-untyped-def]
    async with start_gateway("embedding.normalize=false") as gw:
        worker = await FakeWorker(endpoint).start()
        await gw.wait_for_workers(1)
        assert (await embed(gw, ["a"]))[0] == 200
        assert (await embed(gw, ["b"], normalize=True))[0] == 200
        assert [j.normalize for j in worker.jobs] == [False, True]
        await worker.close()
