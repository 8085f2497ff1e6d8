"""The storage paths in process, without HTTP or workers: bulk insert of user vectors, and vector search.

    python -m bench.storage [--docs 100000] [--batch 1000] [--vectors VECTORS.npy] [--queries 1000]

Insert: JSON bodies of `--batch` documents (384 numbers and a small metadata object each) go through
the insert route's parser (`parse_insert`, as the route runs it) and `CollectionService.insert`
(check, normalise, the collection's writer thread: one durable SQLite transaction, then the index).
It prints vectors/s and each phase's share. Search: `--queries` vector searches through
`CollectionService.search` plus the route's rendering of the hits (what `took_ms` covers, less HTTP
parsing), p50/p99, and recall@10 against exact search.

Without `--vectors` the vectors are random clusters (structure enough for HNSW, not real embeddings);
with it (e.g. `python -m bench.collection_corpus --vectors 100000 OUT.npy`) the last `--queries` rows
are the queries and the rest are indexed, repeated with noise if fewer than `--docs`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import replace
from typing import Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from bench.backends import machine
from bench.recall import exact_top
from gateway.api.routes.documents import parse_insert, render
from gateway.services.collection_inputs import SearchQuery
from gateway.services.collections import CollectionService
from gateway.storage.collection import CollectionInfo
from gateway.storage.index import IndexParams
from gateway.storage.metrics import StorageMetrics
from shared.config import Config

INCLUDE = frozenset(("text", "metadata"))


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 1,000 random centres: a neighbourhood structure like embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    out = centres[rng.integers(0, 1000, n)] + 0.6 * rng.standard_normal((n, dim), dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def corpus(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(documents, queries), unit length."""
    if args.vectors is None:
        data = clustered(args.docs + args.queries, args.dim)
        return data[: args.docs], data[args.docs :]
    data = np.load(args.vectors).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries, base = data[-args.queries :], data[: -args.queries]
    if len(base) < args.docs:  # repeat with a little noise so every document is distinct
        rng = np.random.default_rng(1)
        reps = [base] + [
            base + 0.02 * rng.standard_normal(base.shape, dtype=np.float32)
            for _ in range(-(-args.docs // len(base)) - 1)
        ]
        base = np.concatenate(reps)[: args.docs]
        base /= np.linalg.norm(base, axis=1, keepdims=True)
    return base[: args.docs], queries


def bodies(vectors: np.ndarray, batch: int) -> list[bytes]:
    """Insert request bodies as a client sends them (orjson, like the Python client)."""
    out = []
    for start in range(0, len(vectors), batch):
        docs = [
            {"id": f"d{start + i}", "vector": v, "metadata": {"shard": (start + i) % 10}}
            for i, v in enumerate(vectors[start : start + batch])
        ]
        out.append(orjson.dumps({"documents": docs}, option=orjson.OPT_SERIALIZE_NUMPY))
    return out


async def run(args: argparse.Namespace, data_dir: str) -> dict[str, Any]:
    cfg = Config()
    cfg = replace(cfg, storage=replace(cfg.storage, data_dir=data_dir, snapshot_every=args.snapshot_every))
    params = IndexParams(
        cfg.storage.connectivity,
        cfg.storage.expansion_add,
        args.expansion_search or cfg.storage.expansion_search,
        args.dtype or cfg.storage.index_dtype,
    )
    service = CollectionService(cfg, None, StorageMetrics(CollectorRegistry(), (0.01, 0.1, 1)))  # type: ignore[arg-type]
    await service.start()
    try:
        info = CollectionInfo("col_bench", "bench", args.dim, "cosine", "none", None, True, params, time.time())
        col = await asyncio.to_thread(service._create_files, info)
        service._register(col)
        base, queries = corpus(args)
        payloads = bodies(base, args.batch)
        parse_s = store_s = 0.0
        started = time.perf_counter()
        for raw in payloads:
            t0 = time.perf_counter()
            docs, _ = await asyncio.to_thread(parse_insert, raw, 10_000)
            t1 = time.perf_counter()
            await service.insert("bench", docs)
            parse_s, store_s = parse_s + t1 - t0, store_s + time.perf_counter() - t1
        insert_s = time.perf_counter() - started
        col.wait_for_snapshot()

        truth = exact_top(base, queries, args.k)
        found, took = [], []
        for q in queries:
            query = SearchQuery(None, q, args.k, None, INCLUDE)
            t0 = time.perf_counter()
            hits, _ = await service.search("bench", query)
            results = [{"id": h.doc.doc_id, "score": h.score, **render(h.doc, INCLUDE)} for h in hits]
            took.append(time.perf_counter() - t0)
            found.append({int(r["id"][1:]) for r in results})
        recall = sum(len(f & set(map(int, t))) for f, t in zip(found, truth, strict=True)) / (args.k * len(queries))
        ms = np.array(took) * 1000
        return {
            "documents": len(base),
            "vectors": "clustered random" if args.vectors is None else args.vectors,
            "index": params.__dict__,
            "insert_vectors_per_s": round(len(base) / insert_s),
            "insert_parse_pct": round(100 * parse_s / insert_s, 1),
            "insert_store_pct": round(100 * store_s / insert_s, 1),
            "search_p50_ms": round(float(np.percentile(ms, 50)), 3),
            "search_p99_ms": round(float(np.percentile(ms, 99)), 3),
            "recall_at_10": round(recall, 4),
        }
    finally:
        await service.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000, help="documents per insert request")
    p.add_argument("--dim", type=int, default=384, help="without --vectors")
    p.add_argument("--vectors", help="an (N, d) float32 .npy of real embeddings")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--dtype", help="index dtype (default: storage.index_dtype)")
    p.add_argument("--expansion-search", type=int, default=0, help="ef (default: storage.expansion_search)")
    p.add_argument("--snapshot-every", type=int, default=10_000)
    args = p.parse_args()
    if args.vectors:
        args.dim = int(np.load(args.vectors, mmap_mode="r").shape[1])
    print(json.dumps({"machine": machine()}), flush=True)
    with tempfile.TemporaryDirectory() as data_dir:
        print(json.dumps(asyncio.run(run(args, data_dir))), flush=True)


if __name__ == "__main__":
    main()
