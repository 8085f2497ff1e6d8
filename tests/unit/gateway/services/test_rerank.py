"""The rerank service over the real dispatcher and the in-memory transport (no sockets)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from gateway.errors import InputTooLong, InvalidInput, NoWorker, QueueFull
from gateway.services.embedding import EmbedRequest
from gateway.services.rerank import RerankRequest, RerankService
from shared.protocol import Job, Result
from shared.scores import sigmoid
from tests.support.fake_worker import RERANKER
from tests.support.loopback import LoopbackFleet


def logits_for(job: Job) -> Result:
    """A fake reranker: a pair's logit is its document's length minus 3; the last pair of a job was truncated."""
    assert job.is_rerank
    logits = np.array([[len(d) - 3.0] for d in job.texts], np.float32)
    counts = tuple(5 for _ in job.texts)
    input_tokens = (*counts[:-1], 9) if "long" in job.texts[-1] else counts
    return Result(job.job_id, logits, counts, input_tokens, 1.0)


def fleet(*overrides: str) -> tuple[LoopbackFleet, RerankService]:
    t = LoopbackFleet("batching.batch_timeout_ms=0", *overrides)
    t.worker_up(b"r", capacity=8, info=RERANKER)
    return t, RerankService(t.cfg, t.transport, t.metrics)


async def rerank(t: LoopbackFleet, svc: RerankService, req: RerankRequest) -> object:
    call = asyncio.create_task(svc.rerank(req))
    await asyncio.sleep(0)
    t.answer_all(logits_for)
    return await call


async def test_pairs_are_split_by_max_batch_size_and_scores_come_back_in_document_order() -> None:
    t, svc = fleet("batching.max_batch_size=3")
    documents = tuple("d" * n for n in (5, 1, 7, 3, 2, 6, 4))
    call = asyncio.create_task(svc.rerank(RerankRequest("q", documents)))
    await asyncio.sleep(0)
    sent = [job for _, job in t.sent]
    assert [len(j.texts) for j in sent] == [3, 3, 1] and all(j.queries == ("q",) for j in sent)
    t.answer_all(logits_for)
    out = await call
    np.testing.assert_allclose(out.scores, sigmoid(np.array([len(d) - 3.0 for d in documents])))
    assert out.ranking() == [2, 5, 0, 6, 3, 4, 1]
    assert out.model.name == RERANKER.name and out.total_tokens == 35


async def test_raw_scores_are_the_logits() -> None:
    t, svc = fleet()
    out = await rerank(t, svc, RerankRequest("q", ("a", "abcd"), raw_scores=True))
    assert out.scores.tolist() == [-2.0, 1.0]  # type: ignore[attr-defined]


async def test_truncation_is_counted_or_refused_naming_the_field() -> None:
    t, svc = fleet()
    await rerank(t, svc, RerankRequest("q", ("a", "long")))
    assert t.registry.get_sample_value("akidb_rerank_truncated_pairs_total", {"model": RERANKER.name}) == 1
    with pytest.raises(InputTooLong) as refused:
        await rerank(t, svc, RerankRequest("q", ("a", "long"), truncate=False, field="texts"))
    assert refused.value.param == "texts" and "texts[1]" in refused.value.message


async def test_an_embedding_model_named_for_reranking_and_the_reverse_are_400_naming_model() -> None:
    t, svc = fleet()
    t.worker_up(b"e")  # MiniLM, an embedder
    with pytest.raises(InvalidInput) as embedder:
        svc.resolve_model("minilm")
    assert embedder.value.param == "model" and "is an embedding model" in embedder.value.message
    with pytest.raises(InvalidInput) as reranker:
        await t.service().embed(EmbedRequest(("x",), model=RERANKER.name))
    assert reranker.value.param == "model" and "is a reranker" in reranker.value.message


async def test_no_reranker_is_503_naming_the_default_and_a_full_queue_is_503() -> None:
    t = LoopbackFleet()
    with pytest.raises(NoWorker) as none:
        RerankService(t.cfg, t.transport, t.metrics).resolve_model(None)
    assert "akidb-worker --model ms-marco-MiniLM-L-6-v2" in none.value.message
    t, svc = fleet("batching.max_queue_texts=2")
    t.worker_up(b"r", capacity=1, info=RERANKER)  # registers again with one slot
    running = asyncio.create_task(svc.rerank(RerankRequest("q", ("a",))))
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await svc.rerank(RerankRequest("q", ("a", "b", "c")))
    t.answer_all(logits_for)
    await running
