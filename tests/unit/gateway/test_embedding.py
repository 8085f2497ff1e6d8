"""The embedding service over the real dispatcher, with a transport that carries actions out in memory."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from gateway.dispatch.batcher import Pending
from gateway.dispatch.dispatcher import Action, Deliver, Dispatcher, Fail, Send
from gateway.dispatch.fleet import WorkerView
from gateway.errors import ModelNotFound, NoWorker, Timeout
from gateway.metrics import Metrics
from gateway.services.embedding import EmbeddingService, EmbedRequest
from shared.config import load_config
from shared.protocol import Disconnect, Job, Ready
from tests.unit.gateway.test_dispatch import INFO, MODEL, result_for


class Loopback:
    """A transport without a socket: jobs it would send are kept, callers are settled at once."""

    def __init__(self, *overrides: str) -> None:
        self.cfg = load_config(None, {}, list(overrides))
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.dispatcher = Dispatcher(self.cfg, self.metrics, 1)
        self.workers = WorkerView(self.dispatcher.registry)
        self.sent: list[tuple[bytes, Job]] = []

    def submit(self, item: Pending) -> None:
        self.apply(self.dispatcher.submit(item, asyncio.get_running_loop().time()))

    def apply(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, Send) and isinstance(a.msg, Job):
                self.sent.append((a.identity, a.msg))
            elif isinstance(a, Deliver) and not a.item.future.done():
                a.item.future.set_result(a.result)
            elif isinstance(a, Fail):
                for item in a.items:
                    if not item.future.done():
                        item.future.set_exception(a.error)

    def worker_up(self, identity: bytes = b"w", capacity: int = 2) -> None:
        self.apply(self.dispatcher.on_message(identity, Ready(identity.decode(), (INFO,), "cpu", capacity), 0.0))

    def answer_all(self) -> None:
        while self.sent:
            identity, job = self.sent.pop()  # the last first: the service must reorder
            self.apply(self.dispatcher.on_message(identity, result_for(job), 0.0))


def service(transport: Loopback) -> EmbeddingService:
    return EmbeddingService(transport.cfg, transport, transport.metrics)  # type: ignore[arg-type]


async def test_no_worker_is_503_and_an_unknown_model_is_404() -> None:
    t = Loopback()
    svc = service(t)
    with pytest.raises(NoWorker):
        svc.resolve_model(None)
    t.worker_up()
    assert svc.resolve_model("minilm").name == MODEL  # an alias the worker announced
    with pytest.raises(ModelNotFound) as unknown:
        svc.resolve_model("no-such-model")
    assert unknown.value.http_status == 404 and "akidb-worker --model no-such-model" in unknown.value.message
    t.apply(t.dispatcher.on_message(b"w", Disconnect("bye"), 0.0))
    with pytest.raises(NoWorker) as gone:
        svc.resolve_model(None)
    assert gone.value.http_status == 503 and "connected right now" in gone.value.message


async def test_a_big_request_is_split_and_reassembled_in_order() -> None:
    t = Loopback("batching.max_batch_size=4", "batching.batch_timeout_ms=0")
    t.worker_up(capacity=8)
    svc = service(t)
    texts = tuple("x" * (i + 1) for i in range(10))
    call = asyncio.create_task(svc.embed(EmbedRequest(texts)))
    await asyncio.sleep(0)
    assert sorted(len(j.texts) for _, j in t.sent) == [2, 4, 4]
    t.answer_all()
    out = await call
    assert [row[0] for row in out.vectors] == [len(s) for s in texts]


async def test_a_request_past_its_timeout_gets_504_and_frees_its_queue_slots() -> None:
    t = Loopback("batching.max_queue_texts=2", "batching.batch_timeout_ms=0")
    t.worker_up(capacity=1)
    svc = service(t)
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
    t = Loopback("embedding.normalize=false")
    t.worker_up()
    svc = service(t)
    for req in (EmbedRequest(("a",)), EmbedRequest(("b",), normalize=True)):
        call = asyncio.create_task(svc.embed(req))
        await asyncio.sleep(0)
        normalize = t.sent[-1][1].normalize
        t.answer_all()
        await call
        assert normalize is (req.normalize is True)


async def test_input_type_sends_the_models_prompt_apart_from_the_texts() -> None:
    t = Loopback()
    info = replace(INFO, query_prompt="Query: ", document_prompt="Passage: ")
    t.apply(t.dispatcher.on_message(b"w", Ready("w", (info,), "cpu", 2), 0.0))
    svc = service(t)
    for input_type, prompt in ((None, ""), ("query", "Query: "), ("document", "Passage: ")):
        call = asyncio.create_task(svc.embed(EmbedRequest(("a", "b"), input_type=input_type)))
        await asyncio.sleep(0)
        job = t.sent[-1][1]
        t.answer_all()
        await call
        assert (job.texts, job.prompt) == (("a", "b"), prompt)
