"""Collections benchmarks against the real stack (gateway + workers as processes, loopback only).

    python -m bench.collections ingest [--docs 10000] [--batch 100] [--concurrency 4]
    python -m bench.collections search [--docs 100000] [--vectors FILE.npy] [--rate 100] [--duration 30]
                                       [--insert-concurrency 1]

ingest: documents/s for short texts inserted with auto-embedding, against the embedding throughput
        of the same stack in the same run (/embed with the same texts and batch size, and the
        workers' own compute time). The difference is what storing costs.
search: bulk-loads user vectors (FILE.npy rows, or random unit vectors; 1,000 a request,
        --insert-concurrency requests in flight), then sends text searches open loop at --rate/s
        (each query is embedded: a different text each time), vector searches, and text searches with
        a metadata filter matching 1 %, 10 % and 50 % of the documents; reports p50/p95/p99, the
        gateway's and the worker's RSS, and how long a restart takes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
import numpy as np
import orjson

from bench.collection_corpus import texts as corpus_texts
from bench.loadgen import open_loop
from bench.procs import Stack, rss_mb


def body(data: Any) -> dict[str, Any]:
    return {"data": io.BytesIO(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)),
            "headers": {"Content-Type": "application/json"}}  # fmt: skip


async def call(session: aiohttp.ClientSession, url: str, data: Any, status: int = 200) -> Any:
    async with session.post(url, **body(data)) as resp:
        if resp.status != status:
            raise AssertionError(f"{resp.status} {(await resp.text())[:200]}")
        return await resp.json()


def scrape(url: str, name: str) -> float:
    """Sum of one metric's samples from /metrics."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics") as resp:
        lines = resp.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name + " ") or
               line.startswith(name + "{"))  # fmt: skip


async def ingest(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    texts = corpus_texts(args.docs, kind="short")
    batches = [texts[i : i + args.batch] for i in range(0, len(texts), args.batch)]
    async with aiohttp.ClientSession() as s:
        await call(s, stack.url + "/embed", {"texts": texts[:64]})  # warm-up
        compute0 = scrape(stack.url, "akidb_worker_compute_seconds_sum")
        embed_url = stack.url + "/embed"
        secs = await _drain(lambda i: call(s, embed_url, {"texts": batches[i]}), len(batches), args.concurrency)
        compute = scrape(stack.url, "akidb_worker_compute_seconds_sum") - compute0
        embed_rate = len(texts) / secs
        await call(s, stack.url + "/collections", {"name": "ingest"}, 201)
        docs = [[{"text": t} for t in b] for b in batches]
        url = stack.url + "/collections/ingest/documents"
        compute1 = scrape(stack.url, "akidb_worker_compute_seconds_sum")
        secs2 = await _drain(lambda i: call(s, url, {"documents": docs[i]}, 201), len(batches), args.concurrency)
        ingest_rate = len(texts) / secs2
        compute_ingest = scrape(stack.url, "akidb_worker_compute_seconds_sum") - compute1
    return {
        "docs": len(texts),
        "batch": args.batch,
        "concurrency": args.concurrency,
        "embed_texts_per_s": round(embed_rate, 1),
        "worker_compute_texts_per_s": round(len(texts) / compute * args.workers, 1) if compute else None,
        "ingest_docs_per_s": round(ingest_rate, 1),
        # If this falls below the one above, the gateway's own work took CPU from the worker.
        "worker_compute_texts_per_s_during_ingest": round(len(texts) / compute_ingest * args.workers, 1),
        "overhead_vs_embed_pct": round(100 * (1 - ingest_rate / embed_rate), 1),
    }


async def _drain(call_i: Any, n: int, concurrency: int) -> float:
    """Run calls 0..n-1 with `concurrency` in flight (closed loop); returns the seconds taken."""
    numbers = iter(range(n))

    async def caller() -> None:
        for i in numbers:  # shared iterator: each number is taken once
            await call_i(i)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return time.perf_counter() - started


# Filters by the share of documents they match: every document's metadata is
# {"shard": i % 10, "pct": i % 100}.
SELECTIVITY: dict[str, dict[str, Any]] = {
    "text_filtered_1pct": {"pct": 7},
    "text_filtered_10pct": {"shard": 3},
    "text_filtered_50pct": {"shard": {"$lt": 5}},
}


async def load_vectors(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    if args.vectors:
        vectors = np.load(args.vectors)[: args.docs].astype(np.float32)
    else:
        vectors = np.random.default_rng(0).standard_normal((args.docs, 384)).astype(np.float32)
    async with aiohttp.ClientSession() as s:
        async with s.get(stack.url + "/collections/big") as resp:
            if resp.status == 200 and (await resp.json())["document_count"] == len(vectors):
                return {"docs": len(vectors), "bulk_insert_docs_per_s": "loaded from --data-dir"}
        await call(s, stack.url + "/collections", {"name": "big"}, 201)
        starts = list(range(0, len(vectors), 1000))

        async def insert(i: int) -> None:
            start = starts[i]
            chunk = vectors[start : start + 1000]
            docs = [{"id": f"d{n}", "vector": v, "metadata": {"shard": n % 10, "pct": n % 100}}
                    for n, v in enumerate(chunk, start)]  # fmt: skip
            await call(s, stack.url + "/collections/big/documents", {"documents": docs}, 201)

        secs = await _drain(insert, len(starts), args.insert_concurrency)
    return {
        "docs": len(vectors),
        "insert_concurrency": args.insert_concurrency,
        "bulk_insert_docs_per_s": round(len(vectors) / secs, 1),
    }


async def search_load(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    queries = corpus_texts(args.docs + 20_000, kind="mixed")[-20_000:]  # texts not in the first N
    url = stack.url + "/collections/big/search"
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as s:
        for i in range(20):  # warm-up
            await call(s, url, {"query": queries[i], "k": 10})

        async def text(i: int) -> None:
            await call(s, url, {"query": queries[i % len(queries)], "k": 10})

        rng = np.random.default_rng(1)
        qv = rng.standard_normal((1000, 384)).astype(np.float32)

        async def vector(i: int) -> None:
            await call(s, url, {"vector": qv[i % 1000], "k": 10, "include": []})

        def filtered(flt: dict[str, Any]) -> Any:
            async def one(i: int) -> None:
                await call(s, url, {"query": queries[i % len(queries)], "k": 10, "filter": flt})

            return one

        async def embed_only(i: int) -> None:  # the query-embedding share of a text search
            await call(s, stack.url + "/embed", {"texts": [queries[-1 - i % len(queries)]]})

        phases = [("embed_only", embed_only), ("text", text), ("vector", vector)]
        phases += [(name, filtered(flt)) for name, flt in SELECTIVITY.items()]
        for name, fn in phases:
            result = await open_loop(fn, args.rate, args.duration)
            out[name] = result.summary()
    return out


def restart_gateway(stack: Stack) -> float:
    """Stop the gateway (it saves its snapshots), start it again; seconds until it answers with a worker."""
    old = stack.procs[0]
    old.terminate()
    old.wait(timeout=120)
    started = time.perf_counter()
    log = open(os.devnull, "wb")  # noqa: SIM115
    stack.procs[0] = subprocess.Popen([sys.executable, "-m", "gateway", *stack.gateway_args],
                                      env=stack.env, stdout=log, stderr=log)  # fmt: skip
    stack.wait_ready(stack.n_workers)
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("ingest", "search"))
    p.add_argument("--docs", type=int, default=0)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--insert-concurrency", type=int, default=1, help="search: bulk-load requests in flight")
    p.add_argument("--vectors", help="(N, 384) float32 .npy for the bulk load (default: random)")
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--port", type=int, default=18180)
    p.add_argument("--data-dir", help="keep the data here (a re-run finds the 100k collection and skips the load)")
    args = p.parse_args()
    args.docs = args.docs or (10_000 if args.what == "ingest" else 100_000)
    with contextlib.ExitStack() as cleanup:
        data = args.data_dir or cleanup.enter_context(tempfile.TemporaryDirectory(prefix="akidb-bench-"))
        gw_args = ("--data-dir", data, "--set", "server.grpc_enabled=false")
        with Stack(workers=args.workers, gateway_args=gw_args, http_port=args.port, zmq_port=args.port + 1) as stack:
            if args.what == "ingest":
                report = asyncio.run(ingest(stack, args))
            else:
                report = asyncio.run(load_vectors(stack, args))
                report["gateway_rss_mb_loaded"] = round(rss_mb(stack.procs[0].pid), 1)
                report["worker_rss_mb"] = [round(rss_mb(p.pid), 1) for p in stack.procs[1:]]
                report["restart_s"] = round(restart_gateway(stack), 2)
                report["gateway_rss_mb_restarted"] = round(rss_mb(stack.procs[0].pid), 1)
                report["search"] = asyncio.run(search_load(stack, args))
                report["gateway_rss_mb_after_search"] = round(rss_mb(stack.procs[0].pid), 1)
                report["worker_rss_mb_after_search"] = [round(rss_mb(p.pid), 1) for p in stack.procs[1:]]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
