"""The query-path loads shared by bench.profile and bench.arms: what one request is, and the data it needs.

embed1            POST /embed with one text, a different one each time (the cache never answers)
embed12           POST /embed with one or two new texts, alternating: the issue's "/embed 1–2 short texts" load
vector_search     random vectors, k 10, include [] on a collection of `docs` random 384-d vectors
text_search       a different text query each time, on that collection
text_search_zipf  text queries drawn from 10,000 distinct texts with Zipf(s) popularity: what a cache sees
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import numpy as np

from bench.collection_corpus import texts as corpus_texts
from bench.collections import call

LOADS = ("embed1", "embed12", "vector_search", "text_search", "text_search_zipf")
DISTINCT_QUERIES = 10_000
Request = Callable[[aiohttp.ClientSession, int], Awaitable[None]]


@dataclass(frozen=True)
class Load:
    request: Request  # request(session, i): the i-th request of the measured run
    warmup: Request  # requests with texts the measured run never sends


def zipf_order(n_distinct: int, n_requests: int, s: float, seed: int = 7) -> np.ndarray:
    """Indexes into n_distinct items, item k (0-based) drawn with probability ∝ 1 / (k + 1)^s."""
    weights = 1.0 / np.arange(1, n_distinct + 1) ** s
    return np.random.default_rng(seed).choice(n_distinct, size=n_requests, p=weights / weights.sum())


async def prepare(url: str, what: str, docs: int, n_requests: int, zipf_s: float = 1.1) -> Load:
    """Load the collection the search loads need; return the load's request functions."""
    pool = list(dict.fromkeys(corpus_texts(docs + 30_000, kind="mixed")))[-30_000:]  # not among the documents
    warm_texts, texts = pool[:100], pool[100:]
    embed = what.startswith("embed")
    if not embed:
        await load_collection(url, docs)
    search = url + "/collections/p/search"
    queries = np.random.default_rng(1).standard_normal((1000, 384)).astype(np.float32)
    warm = url + ("/embed" if embed else "/collections/p/search")

    async def warmup(s: aiohttp.ClientSession, i: int) -> None:
        text = warm_texts[i % len(warm_texts)]
        await call(s, warm, {"texts": [text]} if embed else {"query": text, "k": 10})

    if what == "embed1":
        return Load(lambda s, i: call(s, url + "/embed", {"texts": [texts[i % len(texts)]]}), warmup)
    if what == "embed12":  # request i sends 1 + i % 2 texts, none sent before (3 texts per 2 requests)

        def one_or_two(i: int) -> list[str]:
            start = 3 * (i // 2) + i % 2
            return [texts[(start + j) % len(texts)] for j in range(1 + i % 2)]

        return Load(lambda s, i: call(s, url + "/embed", {"texts": one_or_two(i)}), warmup)
    if what == "vector_search":
        return Load(lambda s, i: call(s, search, {"vector": queries[i % 1000], "k": 10, "include": []}), warmup)
    if what == "text_search":
        return Load(lambda s, i: call(s, search, {"query": texts[i % len(texts)], "k": 10}), warmup)
    order = zipf_order(DISTINCT_QUERIES, max(n_requests, 1), zipf_s)
    return Load(lambda s, i: call(s, search, {"query": texts[order[i % len(order)]], "k": 10}), warmup)


async def load_collection(url: str, docs: int) -> None:
    """Collection "p": `docs` random unit-ish vectors, 1,000 per request."""
    vectors = np.random.default_rng(0).standard_normal((docs, 384)).astype(np.float32)
    async with aiohttp.ClientSession() as s:
        await call(s, url + "/collections", {"name": "p"}, 201)
        for start in range(0, docs, 1000):
            batch = [{"id": f"d{start + i}", "vector": v} for i, v in enumerate(vectors[start : start + 1000])]
            await call(s, url + "/collections/p/documents", {"documents": batch}, 201)
