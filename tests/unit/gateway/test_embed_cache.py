"""The embedding cache: its key, its byte bound and LRU order, and the service answering from it."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from gateway.dispatch.embed_cache import ENTRY_OVERHEAD, EmbeddingCache, cache_key, entry
from gateway.errors import InputTooLong
from gateway.metrics import Metrics
from gateway.services.embedding import EmbedRequest
from shared.protocol import Job, Result
from tests.support.loopback import INFO, LoopbackFleet

BASE = {"model": "m", "pooling": "mean", "normalize": True, "truncate": True, "prompt": "", "text": "hello"}


def make_cache(max_bytes: int) -> tuple[EmbeddingCache, CollectorRegistry]:
    registry = CollectorRegistry()
    return EmbeddingCache(max_bytes, Metrics(registry)), registry


def row(value: float, dim: int = 4) -> np.ndarray:
    return np.full(dim, value, dtype=np.float32)


@pytest.mark.parametrize(
    "change",
    [{"model": "m2"}, {"pooling": "cls"}, {"normalize": False}, {"truncate": False}, {"prompt": "query: "},
     {"text": "hello "}, {"model": "m", "text": "hello", "prompt": ""}],
)  # fmt: skip
def test_every_part_that_changes_the_vector_changes_the_key(change: dict[str, object]) -> None:
    same = change == {"model": "m", "text": "hello", "prompt": ""}
    assert (cache_key(**BASE) == cache_key(**{**BASE, **change})) is same  # type: ignore[arg-type]
    assert len(cache_key(**BASE)) == 16  # type: ignore[arg-type]


def test_length_prefixes_keep_shifted_boundaries_apart() -> None:
    assert cache_key("m", "mean", True, True, "ab", "c") != cache_key("m", "mean", True, True, "a", "bc")


def test_it_holds_at_most_max_bytes_and_evicts_the_least_recently_used() -> None:
    size = row(0).nbytes + ENTRY_OVERHEAD
    cache, registry = make_cache(3 * size)
    cache.put_many([(bytes([i]), entry(row(i), 1, 1)) for i in range(3)])
    assert cache.get_many([b"\x00"])[0] is not None  # 0 becomes the most recently used: 1 goes next
    cache.put_many([(b"\x03", entry(row(3), 1, 1))])
    assert [e is not None for e in cache.get_many([b"\x00", b"\x01", b"\x02", b"\x03"])] == [True, False, True, True]
    assert cache.nbytes == 3 * size <= cache.max_bytes
    assert registry.get_sample_value("akidb_embedding_cache_evictions_total") == 1
    assert registry.get_sample_value("akidb_embedding_cache_bytes") == 3 * size
    assert registry.get_sample_value("akidb_embedding_cache_hits_total") == 4
    assert registry.get_sample_value("akidb_embedding_cache_misses_total") == 1


def test_zero_bytes_turns_it_off_and_an_entry_over_the_budget_is_not_stored() -> None:
    off, registry = make_cache(0)
    off.put_many([(b"k", entry(row(1), 1, 1))])
    assert off.get_many([b"k"]) == [None] and len(off) == 0
    assert registry.get_sample_value("akidb_embedding_cache_misses_total") == 0  # off: not a cache, not counted
    small, _ = make_cache(ENTRY_OVERHEAD + 8)
    small.put_many([(b"k", entry(row(1, dim=384), 1, 1))])
    assert len(small) == 0 and small.nbytes == 0


def test_an_entry_is_a_read_only_copy() -> None:
    matrix = np.ones((2, 4), dtype=np.float32)
    e = entry(matrix[0], 3, 5)
    matrix[0] = 7  # the caller's matrix stays its own
    assert e.vector.tolist() == [1, 1, 1, 1] and (e.token_count, e.input_tokens) == (3, 5)
    with pytest.raises(ValueError):
        e.vector[0] = 2


def test_threads_may_share_it() -> None:
    size = row(0).nbytes + ENTRY_OVERHEAD
    cache, _ = make_cache(50 * size)

    def hammer(seed: int) -> None:
        for i in range(2000):
            key = bytes([(seed * 31 + i) % 200])
            if cache.get_many([key])[0] is None:
                cache.put_many([(key, entry(row(i), 1, 1))])

    threads = [threading.Thread(target=hammer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50 and cache.nbytes == 50 * size


# -- the service: hits, misses and what reaches a worker ---------------------------------------


def answer_with_random_rows(t: LoopbackFleet, seed: int) -> None:
    """Answer every job with random float32 rows (not a function of the text, so a recompute would differ)."""
    rng = np.random.default_rng(seed)

    def answer(job: Job) -> Result:
        rows = rng.standard_normal((len(job.texts), 4)).astype(np.float32)
        counts = tuple(len(text) for text in job.texts)
        return Result(job.job_id, rows, counts, counts, 1.0)

    t.answer_all(answer)


async def test_a_hit_is_bitwise_the_vector_of_the_miss_that_filled_it_with_its_token_counts() -> None:
    t = LoopbackFleet()
    t.worker_up()
    svc = t.service()
    call = asyncio.create_task(svc.embed(EmbedRequest(("alpha", "beta gamma"))))
    await asyncio.sleep(0)
    answer_with_random_rows(t, seed=1)
    first = await call
    again = await svc.embed(EmbedRequest(("beta gamma", "alpha")))  # no job: it returns without a worker's answer
    assert t.sent == []
    assert again.vectors.tobytes() == first.vectors[::-1].tobytes()
    assert again.token_counts == [10, 5] and again.total_tokens == first.total_tokens
    assert t.registry.get_sample_value("akidb_embedding_cache_hits_total") == 2
    assert t.registry.get_sample_value("akidb_embedding_tokens_total", {"model": "all-MiniLM-L6-v2"}) == 30


async def test_only_uncached_texts_go_to_the_worker_each_once() -> None:
    t = LoopbackFleet()
    t.worker_up()
    svc = t.service()
    call = asyncio.create_task(svc.embed(EmbedRequest(("a", "bb"))))
    await asyncio.sleep(0)
    t.answer_all()
    cached = await call
    call = asyncio.create_task(svc.embed(EmbedRequest(("ccc", "a", "dddd", "ccc", "bb"))))
    await asyncio.sleep(0)
    assert [job.texts for _, job in t.sent] == [("ccc", "dddd")]
    t.answer_all()
    out = await call
    assert [r[0] for r in out.vectors] == [3, 1, 4, 3, 2]  # result_for's first column is len(text)
    assert out.vectors[1].tobytes() == cached.vectors[0].tobytes()
    assert out.vectors.flags.writeable and out.vectors.dtype == np.float32


async def test_options_that_change_the_vector_miss_and_the_cache_can_be_off() -> None:
    t = LoopbackFleet()
    t.worker_up()
    svc = t.service()
    for req in (EmbedRequest(("a",)), EmbedRequest(("a",), normalize=False), EmbedRequest(("a",), pooling="cls")):
        call = asyncio.create_task(svc.embed(req))
        await asyncio.sleep(0)
        assert len(t.sent) == 1, req
        t.answer_all()
        await call
    off = LoopbackFleet("cache.max_bytes=0")
    off.worker_up()
    svc = off.service()
    for _ in range(2):
        call = asyncio.create_task(svc.embed(EmbedRequest(("a", "a"))))
        await asyncio.sleep(0)
        assert [job.texts for _, job in off.sent] == [("a", "a")]  # off: every text goes, as before the cache
        off.answer_all()
        await call


async def test_a_hit_keeps_the_truncate_false_check_true() -> None:
    t = LoopbackFleet()
    t.worker_up()
    svc = t.service()

    def too_long(job: Job) -> Result:
        rows = np.ones((len(job.texts), 4), dtype=np.float32)
        return Result(job.job_id, rows, (16,) * len(job.texts), (40,) * len(job.texts), 1.0)

    for attempt in range(2):
        call = asyncio.create_task(svc.embed(EmbedRequest(("long text",), truncate=False)))
        await asyncio.sleep(0)
        assert len(t.sent) == (1 if attempt == 0 else 0)
        t.answer_all(too_long)
        with pytest.raises(InputTooLong, match="texts\\[0\\] has 40 tokens"):
            await call
    assert t.registry.get_sample_value("akidb_embedding_cache_hits_total") == 1  # the second was refused from the cache


async def test_a_query_and_a_document_of_one_text_are_two_entries() -> None:
    t = LoopbackFleet()
    info = dataclasses.replace(INFO, query_prompt="query: ", document_prompt="passage: ")
    t.worker_up(info=info)
    svc = t.service()
    # each prompt is its own entry: three misses, then the query again is a hit (no job)
    for input_type, sent in [("query", ["query: "]), ("document", ["passage: "]), (None, [""]), ("query", [])]:
        call = asyncio.create_task(svc.embed(EmbedRequest(("same text",), input_type=input_type)))
        await asyncio.sleep(0)
        assert [job.prompt for _, job in t.sent] == sent, input_type
        t.answer_all()
        await call
    assert t.registry.get_sample_value("akidb_embedding_cache_misses_total") == 3
    assert t.registry.get_sample_value("akidb_embedding_cache_hits_total") == 1
