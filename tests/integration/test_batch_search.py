"""Batch search over the real app with a fake worker: order, per-member options, one embedding call."""

from __future__ import annotations

from typing import Any

from gateway.api import keys
from gateway.storage.filters import compile_filter
from tests.support.fake_worker import FakeWorker
from tests.support.gateway import Gateway, GatewayFactory

UNIT = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]


async def post(gw: Gateway, path: str, body: Any, status: int = 200) -> Any:
    resp = await gw.client.post(path, json=body)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_mixed_text_and_vector_queries_come_back_in_order_from_one_embedding_call(
    gw: Gateway, endpoint: str
) -> None:
    worker = await FakeWorker(endpoint).start()
    await gw.wait_for_workers(1)
    await post(gw, "/collections", {"name": "c"}, 201)  # 4-d: the fake worker's model
    docs = [{"id": f"d{i}", "vector": v, "metadata": {"g": "ab"[i % 2]}} for i, v in enumerate(UNIT)]
    await post(gw, "/collections/c/documents", {"documents": docs}, 201)
    calls = (
        "akidb_embedding_requests_total",
        {"model": "all-MiniLM-L6-v2", "status": "ok", "transport": "collections"},
    )
    before = await gw.metric(calls[0], **calls[1])
    queries = [
        {"query": "x" * 50, "k": 1},  # the fake's vector [50, n, 0, 1]: nearest d0
        {"vector": UNIT[2], "k": 1, "include": []},
        {"query": "y", "k": 2, "include": ["vector"]},
        {"vector": UNIT[3], "k": 4, "filter": {"g": "a"}},
    ]
    out = await post(gw, "/collections/c/search", {"queries": queries})
    assert set(out) == {"results", "took_ms"} and len(out["results"]) == 4
    first, second, third, fourth = out["results"]
    assert [h["id"] for h in first] == ["d0"] and first[0]["metadata"] == {"g": "a"}
    assert second == [{"id": "d2", "score": second[0]["score"]}]  # include [] : id and score only
    assert len(third) == 2 and all(len(h["vector"]) == 4 for h in third)
    assert sorted(h["id"] for h in fourth) == ["d0", "d2"]  # the filter: only g = a, however large k
    assert [j.texts for j in worker.jobs] == [("x" * 50, "y")]  # both texts, one job
    assert await gw.metric(calls[0], **calls[1]) - before == 1
    assert await gw.metric("akidb_search_latency_seconds_count", query="batch") == 1
    # A batch of vectors only embeds nothing.
    again = await post(gw, "/collections/c/search", {"queries": [{"vector": UNIT[1], "k": 1}] * 3})
    assert [[h["id"] for h in r] for r in again["results"]] == [["d1"]] * 3 and len(worker.jobs) == 1
    await worker.close()


async def test_a_refused_batch_member_is_named_by_its_index(gw: Gateway, endpoint: str) -> None:
    worker = await FakeWorker(endpoint).start()
    await gw.wait_for_workers(1)
    await post(gw, "/collections", {"name": "c"}, 201)
    for body, status, code, message in [
        ({"queries": [{"query": "a"}, {"query": "b", "k": 0}]}, 400, "invalid_input", "queries[1].k must be between"),
        ({"queries": [{"query": "a"}] * 101}, 400, "invalid_input", "queries holds 101 items, over the limit of 100"),
        ({"queries": [{"query": "a"}], "query": "b"}, 400, "invalid_input", "or a single search, not both"),
        ({"queries": [{"vector": [1.0, 0, 0]}]}, 400, "dimension_mismatch", "got 3, expected 4"),
        (
            {"queries": [{"query": "a", "filter": {"$bad": 1}}]},
            400,
            "invalid_filter",
            "queries[0].filter: unknown operator",
        ),
    ]:
        error = (await post(gw, "/collections/c/search", body, status))["error"]
        assert error["code"] == code and message in error["message"], error
    assert worker.jobs == []  # refused before anything was embedded
    await post(gw, "/collections/nope/search", {"queries": [{"query": "a"}]}, 404)
    await worker.close()


async def test_lone_searches_answer_on_the_event_loop_and_batches_on_reader_threads(gw: Gateway, endpoint: str) -> None:
    worker = await FakeWorker(endpoint).start()
    await gw.wait_for_workers(1)
    await post(gw, "/collections", {"name": "c"}, 201)
    docs = [{"id": f"d{i}", "vector": v, "metadata": {"g": "ab"[i % 2]}} for i, v in enumerate(UNIT)]
    await post(gw, "/collections/c/documents", {"documents": docs}, 201)
    on_loop = "akidb_searches_on_loop_total"
    before = await gw.metric(on_loop)
    await post(gw, "/collections/c/search", {"vector": UNIT[0], "k": 2})
    assert await gw.metric(on_loop) - before == 1
    await post(gw, "/collections/c/search", {"queries": [{"vector": UNIT[1], "k": 1}] * 3})
    assert await gw.metric(on_loop) - before == 1  # a batch does not hold the loop for all its members
    flt = {"vector": UNIT[0], "k": 2, "filter": {"g": "a"}}
    first = await post(gw, "/collections/c/search", flt)  # the filter's matches are looked up on a thread...
    assert await gw.metric(on_loop) - before == 1
    again = await post(gw, "/collections/c/search", flt)  # ...and remembered: the next one answers on the loop
    assert await gw.metric(on_loop) - before == 2
    assert [h["id"] for h in again["results"]] == [h["id"] for h in first["results"]] == ["d0", "d2"]
    await worker.close()


async def test_storage_filter_memory_mb_sizes_each_collections_filter_memory(
    start_gateway: GatewayFactory, endpoint: str
) -> None:
    """The bound itself (bytes, least recently used first) is tested in storage/test_matches.py."""
    async with start_gateway("storage.filter_memory_mb=1") as gw:
        worker = await FakeWorker(endpoint).start()
        await gw.wait_for_workers(1)
        await post(gw, "/collections", {"name": "c"}, 201)
        col = gw.app[keys.COLLECTIONS].get("c").collection  # the embedded engine's own filter memory
        assert col.matches._max_bytes == 2**20
        docs = [{"id": f"d{i}", "vector": v, "metadata": {"g": "ab"[i % 2]}} for i, v in enumerate(UNIT)]
        await post(gw, "/collections/c/documents", {"documents": docs}, 201)
        await post(gw, "/collections/c/search", {"vector": UNIT[0], "k": 3, "filter": {"g": "a"}})
        assert col.matches.fresh(compile_filter({"g": "a"}), col.marks) is not None
        await worker.close()
