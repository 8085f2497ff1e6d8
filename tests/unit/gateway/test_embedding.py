"""The embedding service over the real dispatcher and the in-memory transport (no sockets)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from gateway.errors import ModelNotFound, NoWorker, QueueFull, Timeout
from gateway.services.embedding import EmbedRequest
from shared.protocol import Disconnect
from tests.support.loopback import INFO, MODEL, LoopbackFleet


async def test_no_worker_is_503_and_an_unknown_model_is_404() -> None:
    t = LoopbackFleet()
    svc = t.service()
    with pytest.raises(NoWorker):
        svc.resolve_model(None)
    t.worker_up()
    assert svc.resolve_model("minilm").name == MODEL  # an alias the worker announced
    with pytest.raises(ModelNotFound) as unknown:
        svc.resolve_model("no-such-model")
    assert unknown.value.http_status == 404 and "akidb-worker --model no-such-model" in unknown.value.message
    t.receive(b"w", Disconnect("bye"))
    with pytest.raises(NoWorker) as gone:
        svc.resolve_model(None)
    assert gone.value.http_status == 503 and "connected right now" in gone.value.message


async def test_a_big_request_is_split_and_reassembled_in_order() -> None:
    t = LoopbackFleet("batching.max_batch_size=4", "batching.batch_timeout_ms=0")
    t.worker_up(capacity=8)
    svc = t.service()
    texts = tuple("x" * (i + 1) for i in range(10))
    call = asyncio.create_task(svc.embed(EmbedRequest(texts)))
    await asyncio.sleep(0)
    assert sorted(len(j.texts) for _, j in t.sent) == [2, 4, 4]
    t.answer_all()
    out = await call
    assert [row[0] for row in out.vectors] == [len(s) for s in texts]


async def test_a_request_past_its_timeout_gets_504_and_frees_its_queue_slots() -> None:
    t = LoopbackFleet("batching.max_queue_texts=2", "batching.batch_timeout_ms=0")
    t.worker_up(capacity=1)
    svc = t.service()
    running = asyncio.create_task(svc.embed(EmbedRequest(("runs long",)), timeout_s=5))
    await asyncio.sleep(0)
    with pytest.raises(Timeout) as late:
        await svc.embed(EmbedRequest(("waits", "too long")), timeout_s=0.05)
    assert late.value.http_status == 504 and "caller's deadline" in late.value.message
    # The timed-out texts left the queue: two more fit now.
    fits = asyncio.create_task(svc.embed(EmbedRequest(("a", "b"))))
    await asyncio.sleep(0)
    t.answer_all()
    await asyncio.sleep(0)
    t.answer_all()
    assert len((await running).vectors) == 1 and len((await fits).vectors) == 2
    assert t.registry.get_sample_value("akidb_embedding_abandoned_total") == 2


async def test_normalize_defaults_to_the_config_and_requests_override_it() -> None:
    t = LoopbackFleet("embedding.normalize=false")
    t.worker_up()
    svc = t.service()
    for req in (EmbedRequest(("a",)), EmbedRequest(("b",), normalize=True)):
        call = asyncio.create_task(svc.embed(req))
        await asyncio.sleep(0)
        normalize = t.sent[-1][1].normalize
        t.answer_all()
        await call
        assert normalize is (req.normalize is True)


async def test_input_type_sends_the_models_prompt_apart_from_the_texts() -> None:
    t = LoopbackFleet()
    info = replace(INFO, query_prompt="Query: ", document_prompt="Passage: ")
    t.worker_up(info=info)
    svc = t.service()
    for input_type, prompt in ((None, ""), ("query", "Query: "), ("document", "Passage: ")):
        call = asyncio.create_task(svc.embed(EmbedRequest(("a", "b"), input_type=input_type)))
        await asyncio.sleep(0)
        job = t.sent[-1][1]
        t.answer_all()
        await call
        assert (job.texts, job.prompt) == (("a", "b"), prompt)


async def test_a_full_queue_fails_the_request_with_503_and_queues_none_of_its_later_chunks() -> None:
    t = LoopbackFleet("batching.max_batch_size=2", "batching.max_queue_texts=3", "batching.batch_timeout_ms=0")
    t.worker_up(capacity=1)
    svc = t.service()
    running = asyncio.create_task(svc.embed(EmbedRequest(("runs",))))
    await asyncio.sleep(0)
    with pytest.raises(QueueFull) as full:
        await svc.embed(EmbedRequest(("a", "b", "c", "d", "e", "f")))  # chunks of 2: the second is refused
    assert full.value.http_status == 503 and full.value.headers == {"Retry-After": "1"}
    assert "batching.max_queue_texts=3" in full.value.message
    labels = {"model": MODEL, "status": "queue_full", "transport": "http"}
    assert t.registry.get_sample_value("akidb_embedding_requests_total", labels) == 1
    t.answer_all()
    assert [job.texts for _, job in t.sent] == []  # the refused request's first chunk left with it
    assert len((await running).vectors) == 1
    assert t.registry.get_sample_value("akidb_embedding_abandoned_total") == 2
