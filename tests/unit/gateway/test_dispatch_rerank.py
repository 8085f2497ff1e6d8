"""Rerank chunks through the same dispatcher: coalesced across queries, split, refused, requeued; a fake clock."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np

from gateway.dispatch.batcher import Pending
from gateway.dispatch.dispatcher import Action, Fail, pairs_of
from gateway.dispatch.failures import Reason
from shared.protocol import Job, ModelInfo, Ready, Result
from tests.unit.gateway.test_dispatch import Fleet, delivered, job_to, jobs

RERANKER = "ms-marco-MiniLM-L-6-v2"
RERANK_INFO = ModelInfo(RERANKER, 1, 512, "cls", kind="rerank")


def scores_for(job: Job) -> Result:
    """A fake reranker's answer: each pair's logit is its document's length plus 100 × its query's index."""
    logits = np.array([[len(d) + 100 * q] for q, d in zip(job.query_of, job.texts, strict=True)], np.float32)
    counts = tuple(3 for _ in job.texts)
    return Result(job.job_id, logits, counts, counts, 1.0)


def reranker_up(f: Fleet, identity: bytes, capacity: int = 1, now: float = 0.0) -> list[Action]:
    return f.d.on_message(identity, Ready(identity.decode(), (RERANK_INFO,), "cpu", capacity), now)


def submit_pairs(f: Fleet, query: str, documents: tuple[str, ...], now: float = 0.0) -> tuple[Pending, list[Action]]:
    item = Pending(RERANKER, documents, "", False, now + 30.0, now, Future(), query=query)
    return item, f.d.submit(item, now)


def test_pairs_of_names_each_query_once_in_order_of_first_use() -> None:
    items = [
        Pending(RERANKER, docs, "", False, 1.0, 0.0, Future(), query=q)
        for q, docs in [("a", ("1", "2")), ("b", ("3",)), ("a", ("4",))]
    ]
    assert pairs_of(items) == (("a", "b"), (0, 0, 1, 0))
    assert pairs_of([Pending("m", ("t",), "mean", True, 1.0, 0.0, Future())]) == ((), ())


def test_chunks_of_different_queries_coalesce_into_one_rerank_job_and_each_caller_gets_its_scores() -> None:
    f = Fleet()
    reranker_up(f, b"r")
    _, out = submit_pairs(f, "first", ("x",))
    first = job_to(out, b"r")
    assert (first.queries, first.query_of, first.pooling, first.normalize) == (("first",), (0,), "", False)
    a, out = submit_pairs(f, "qa", ("aa", "aaaa"), now=0.01)
    assert jobs(out) == []  # the only slot is taken
    b, _ = submit_pairs(f, "qb", ("bbb",), now=0.01)
    second = job_to(f.d.on_message(b"r", scores_for(first), 0.02), b"r")
    assert (second.texts, second.queries, second.query_of) == (("aa", "aaaa", "bbb"), ("qa", "qb"), (0, 0, 1))
    got = delivered(f.d.on_message(b"r", scores_for(second), 0.03))
    assert got[a].vectors[:, 0].tolist() == [2.0, 4.0]
    assert got[b].vectors[:, 0].tolist() == [103.0]
    assert got[a].token_counts == (3, 3)


def test_rerank_and_embedding_chunks_never_share_a_job_or_a_worker() -> None:
    f = Fleet()
    f.ready(b"e", capacity=1)
    reranker_up(f, b"r")
    embed, out = f.submit(2)
    pairs, out2 = submit_pairs(f, "q", ("d",))
    assert not job_to(out, b"e").is_rerank and job_to(out2, b"r").is_rerank
    assert job_to(out, b"e").texts == embed.texts and job_to(out2, b"r").texts == pairs.texts


def test_a_request_over_max_batch_size_spreads_its_chunks_over_rerankers() -> None:
    f = Fleet("batching.max_batch_size=2")
    reranker_up(f, b"r1")
    reranker_up(f, b"r2")
    chunks = [submit_pairs(f, "q", docs) for docs in (("a", "b"), ("c", "d"))]
    first, second = job_to(chunks[0][1], b"r1"), job_to(chunks[1][1], b"r2")
    assert (first.texts, second.texts) == (("a", "b"), ("c", "d"))


def test_a_full_queue_refuses_pairs_with_queue_full() -> None:
    f = Fleet("batching.max_queue_texts=3")
    reranker_up(f, b"r")
    submit_pairs(f, "q", ("running",))
    submit_pairs(f, "q", ("a", "b", "c"))
    refused, out = submit_pairs(f, "q", ("d",))
    assert [(a.items, a.failure.reason) for a in out if isinstance(a, Fail)] == [((refused,), Reason.QUEUE_FULL)]


def test_a_dead_rerankers_job_goes_to_another_with_its_queries() -> None:
    f = Fleet("batching.batch_timeout_ms=0")
    reranker_up(f, b"doomed")
    held, out = submit_pairs(f, "the query", ("d1", "d2"))
    lost = job_to(out, b"doomed")
    f.d.tick(0.35)  # silent past its liveness
    assert f.metric("akidb_jobs_requeued_total") == 1
    again = job_to(reranker_up(f, b"spare", now=0.4), b"spare")
    assert again.pairs() == lost.pairs() == [("the query", "d1"), ("the query", "d2")]
    got = delivered(f.d.on_message(b"spare", scores_for(again), 0.5))
    assert got[held].vectors[:, 0].tolist() == [2.0, 2.0]
