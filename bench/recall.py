"""Recall@k of the collection index (AkiDB's own USearch wrapper) against exact search, per parameter set.

    python -m bench.recall VECTORS.npy [--queries 1000] [--grid]

VECTORS.npy is an (N, d) float32 file, e.g. from `python -m bench.collection_corpus --vectors 100000`.
The last `--queries` rows are the queries; the rest are indexed. Without --grid it measures the
defaults in shared/config.py; with --grid it sweeps dtype, connectivity and expansion_search.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

from gateway.storage.index import IndexParams, VectorIndex
from shared.config import StorageConfig

DTYPES = ("f32", "f16", "bf16", "i8")  # i8: measured and refused, recall@10 stops near 0.95


def exact_top(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine top-k (rows are unit length), in blocks to bound memory."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 256):
        scores = queries[start : start + 256] @ base.T
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + 256] = np.take_along_axis(part, order, axis=1)
    return out


def measure(
    base: np.ndarray, queries: np.ndarray, truth: np.ndarray, params: IndexParams, efs: list[int], k: int
) -> list[dict]:
    """Build one index with `params`, then measure recall and latency at each expansion_search."""
    index = VectorIndex(base.shape[1], "cosine", params)
    started = time.perf_counter()
    index.add(np.arange(len(base), dtype=np.uint64), base)
    build_s = time.perf_counter() - started
    rows = []
    for ef in efs:
        index._index.expansion_search = ef
        found, lat = [], []
        for q in queries:
            t = time.perf_counter()
            with index.lock.shared():
                keys, _ = index.search(q, k)
            lat.append(time.perf_counter() - t)
            found.append(keys)
        hits = sum(len(set(map(int, f)) & set(map(int, t))) for f, t in zip(found, truth, strict=True))
        rows.append({
            **params.__dict__,
            "expansion_search": ef,
            "recall": round(hits / (k * len(queries)), 4),
            "search_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 3),
            "search_p99_ms": round(float(np.percentile(lat, 99)) * 1000, 3),
            "build_s": round(build_s, 1),
            "memory_mb": round(index._index.memory_usage / 2**20, 1),
        })  # fmt: skip
    index.close()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vectors")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--limit", type=int, default=0, help="index only the first N rows (0: all)")
    p.add_argument("--grid", action="store_true")
    args = p.parse_args()
    data = np.load(args.vectors).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries, base = data[-args.queries :], data[: -args.queries]
    if args.limit:
        base = base[: args.limit]
    truth = exact_top(base, queries, args.k)
    d = StorageConfig()
    if args.grid:
        builds = [
            IndexParams(m, d.expansion_add, d.expansion_search, dt) for dt, m in itertools.product(DTYPES, (16, 32))
        ]
        efs = [64, 96, 128, 192, 256]
    else:
        builds = [IndexParams(d.connectivity, d.expansion_add, d.expansion_search, d.index_dtype)]
        efs = [d.expansion_search]
    print(json.dumps({"indexed": len(base), "queries": len(queries), "k": args.k}))
    for params in builds:
        for row in measure(base, queries, truth, params, efs, args.k):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
