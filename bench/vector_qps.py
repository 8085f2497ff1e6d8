"""Vector search over HTTP as a keep-alive client sees it: latency, server-side took_ms, QPS, recall.

    python -m bench.vector_qps --vectors /tmp/vectors-100k.npy [--threads 8] [--duration 20]
                               [--root OTHER_CHECKOUT --python ITS_PYTHON]

The last `--queries` rows of VECTORS.npy are the queries; the rest (99,000 of 100,000) are bulk-loaded
into a fresh stack (gateway + one worker, as `make run` starts them). Then:
- sequential: each query once, one keep-alive connection, one request at a time: client p50/p95/p99,
  the server's own `took_ms` p50/p95 and recall@10 against exact search;
- parallel: `--threads` client threads, each with its own keep-alive connection, closed loop for
  `--duration` s: requests/s and latency;
- RSS of the gateway and of the worker with the collection loaded.

`--root` runs another checkout's gateway instead (e.g. a worktree of an older commit, for a before/after
on this machine in one sitting): the gateway alone, no worker (vector search needs none), default config.

The client runs on the same cores as the server, as the issue's Chroma comparison did. Requests ask for
`"include": []` (ids and scores) unless `--include text,metadata`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.backends import machine
from bench.collections import _drain, call
from bench.procs import Stack, rss_mb
from bench.recall import exact_top
from bench.snapshot_latency import start_gateway


class Client:
    """One keep-alive HTTP/1.1 connection: what a synchronous SDK's session does."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port)

    def search(self, vector: np.ndarray, k: int, include: list[str]) -> dict[str, Any]:
        body = orjson.dumps({"vector": vector, "k": k, "include": include}, option=orjson.OPT_SERIALIZE_NUMPY)
        self.conn.request("POST", "/collections/big/search", body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise AssertionError(f"{resp.status} {data[:200]!r}")
        return orjson.loads(data)


async def load(url: str, base: np.ndarray) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        # With its dimension: an older gateway without a worker cannot ask one for the model's.
        await call(s, url + "/collections", {"name": "big", "dimension": base.shape[1]}, 201)
        starts = list(range(0, len(base), 1000))

        async def insert(n: int) -> None:
            docs = [{"id": f"d{starts[n] + i}", "vector": v} for i, v in enumerate(base[starts[n] : starts[n] + 1000])]
            await call(s, url + "/collections/big/documents", {"documents": docs}, 201)

        secs = await _drain(insert, len(starts), 2)
    return len(base) / secs


def sequential(port: int, queries: np.ndarray, truth: np.ndarray, k: int, include: list[str]) -> dict[str, Any]:
    client = Client(port)
    for q in queries[:50]:  # warm-up: connection, caches, branch predictors
        client.search(q, k, include)
    lat, took, hits = [], [], 0
    for q, t in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        out = client.search(q, k, include)
        lat.append((time.perf_counter() - t0) * 1000)
        took.append(out["took_ms"])
        hits += len({int(r["id"][1:]) for r in out["results"]} & set(map(int, t)))
    return {
        "requests": len(queries),
        "client_p50_ms": pct(lat, 50),
        "client_p95_ms": pct(lat, 95),
        "client_p99_ms": pct(lat, 99),
        "took_ms_p50": pct(took, 50),
        "took_ms_p95": pct(took, 95),
        "recall_at_10": round(hits / (k * len(queries)), 4),
    }


def parallel(port: int, queries: np.ndarray, k: int, include: list[str], threads: int, secs: float) -> dict[str, Any]:
    lat: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    stop = time.perf_counter() + secs

    def run(n: int) -> None:
        client, i = Client(port), n
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                client.search(queries[i % len(queries)], k, include)
                lat[n].append((time.perf_counter() - t0) * 1000)
            except (AssertionError, OSError, http.client.HTTPException):
                errors[n] += 1
                client = Client(port)
            i += threads

    started = time.perf_counter()
    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    every = [x for part in lat for x in part]
    return {
        "threads": threads,
        "qps": round(len(every) / wall, 1),
        "errors": sum(errors),
        "p50_ms": pct(every, 50),
        "p95_ms": pct(every, 95),
        "p99_ms": pct(every, 99),
    }


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


@contextlib.contextmanager
def serving(args: argparse.Namespace, data: str) -> Iterator[tuple[str, list[int]]]:
    """(URL, pids) of this checkout's stack (gateway + one worker), or of --root's gateway alone."""
    if args.root:
        proc, url = start_gateway(args.root, args.python, Path(data), 10_000, Path(data) / "gateway.log")
        try:
            yield url, [proc.pid]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        return
    gw = ("--data-dir", data, "--set", "server.grpc_enabled=false", *(x for s in args.set for x in ("--set", s)))
    with Stack(gateway_args=gw, http_port=args.port, zmq_port=args.port + 1) as stack:
        yield stack.url, stack.pids


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vectors", required=True, help="(N, d) float32 .npy of real embeddings")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--include", default="", help="comma-separated fields to return (default: none)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="gateway config")
    p.add_argument("--port", type=int, default=18480)
    p.add_argument("--root", type=Path, help="another checkout whose gateway to run (alone)")
    p.add_argument("--python", default=sys.executable, help="with --root: an interpreter with its dependencies")
    args = p.parse_args()
    include = [f for f in args.include.split(",") if f]
    vectors = np.load(args.vectors).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    base, queries = vectors[: -args.queries], vectors[-args.queries :]
    truth = exact_top(base, queries, args.k)
    print(json.dumps({"machine": machine()}), flush=True)
    with tempfile.TemporaryDirectory(prefix="akidb-bench-") as data, serving(args, data) as (url, pids):
        port = int(url.rsplit(":", 1)[1])
        report: dict[str, Any] = {"root": str(args.root or "."), "documents": len(base), "include": include}
        report["bulk_insert_docs_per_s"] = round(asyncio.run(load(url, base)), 1)
        report["sequential"] = sequential(port, queries, truth, args.k, include)
        report["parallel"] = parallel(port, queries, args.k, include, args.threads, args.duration)
        rss = [round(rss_mb(pid), 1) for pid in pids]
        report["rss_mb"] = dict(zip(("gateway", "worker"), rss, strict=False)) | {"total": round(sum(rss), 1)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
