"""Re-embedding speed against raw /embed throughput on the same texts (issue 13's target: at least 85 %).

`python -m bench.reembed --docs 5000 [--workers 1]` starts a gateway and MiniLM workers, stores DOCS real
texts (apt's package descriptions, `bench.collection_corpus`) in a collection, then measures, on the same
texts and with the same work per text (MiniLM, CLS pooling, so the stored mean-pooled vectors change):

  raw      /embed in requests of PAGE texts, IN_FLIGHT at a time (what a client could get itself)
  reembed  POST /collections/{id}/reembed from the 202 until the job is done (swap included)

The embedding cache is off: the raw pass must not warm it for the job. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from typing import Any

import aiohttp

from bench.collection_corpus import texts
from bench.procs import Stack
from gateway.services.reembed import IN_FLIGHT

MODEL = "all-MiniLM-L6-v2"
PAGE = 32 * IN_FLIGHT  # the job's page at the default batching.max_batch_size
INSERT_BATCH = 500


async def store(session: aiohttp.ClientSession, url: str, corpus: list[str]) -> None:
    async with session.post(url + "/collections", json={"name": "bench", "model": MODEL}) as resp:
        assert resp.status == 201, await resp.text()
    for start in range(0, len(corpus), INSERT_BATCH):
        docs = [{"id": str(start + i), "text": t} for i, t in enumerate(corpus[start : start + INSERT_BATCH])]
        async with session.post(url + "/collections/bench/documents", json={"documents": docs}) as resp:
            assert resp.status == 201, await resp.text()


async def raw(session: aiohttp.ClientSession, url: str, corpus: list[str]) -> float:
    """Texts per second through /embed, IN_FLIGHT requests of PAGE texts at a time."""
    pages = [corpus[i : i + PAGE] for i in range(0, len(corpus), PAGE)]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for page in pages:
        queue.put_nowait(page)

    async def client() -> None:
        while not queue.empty():
            page = queue.get_nowait()
            body = {"texts": page, "model": MODEL, "pooling": "cls", "input_type": "document"}
            async with session.post(url + "/embed", json=body) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(IN_FLIGHT)))
    return len(corpus) / (time.perf_counter() - started)


async def reembed(session: aiohttp.ClientSession, url: str, n: int) -> dict[str, Any]:
    """Texts per second of a re-embedding job, 202 to done."""
    started = time.perf_counter()
    async with session.post(url + "/collections/bench/reembed", json={"model": MODEL, "pooling": "cls"}) as resp:
        assert resp.status == 202, await resp.text()
        job = await resp.json()
    while True:
        async with session.get(f"{url}/collections/bench/jobs/{job['id']}") as resp:
            status = await resp.json()
        if status["state"] != "running":
            break
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - started
    assert status["state"] == "done" and status["done"] == n, status
    return {"seconds": round(seconds, 2), "texts_per_s": round(n / seconds, 1)}


async def run(url: str, corpus: list[str]) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await store(session, url, corpus)
        raw_rate = await raw(session, url, corpus)
        job = await reembed(session, url, len(corpus))
    return {
        "docs": len(corpus),
        "raw_embed_texts_per_s": round(raw_rate, 1),
        "reembed_texts_per_s": job["texts_per_s"],
        "reembed_seconds": job["seconds"],
        "ratio": round(job["texts_per_s"] / raw_rate, 3),
        "target": 0.85,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--docs", type=int, default=5000, help="documents in the collection")
    p.add_argument("--workers", type=int, default=1, help="MiniLM workers to start")
    args = p.parse_args()
    corpus = texts(args.docs)
    with tempfile.TemporaryDirectory() as data:
        gateway_args = ("--data-dir", data, "--set", "cache.max_bytes=0")
        with Stack(workers=args.workers, gateway_args=gateway_args) as stack:
            result = asyncio.run(run(stack.url, corpus))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
