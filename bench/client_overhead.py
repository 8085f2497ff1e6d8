"""Per-call overhead of `akidb_client` over raw httpx for one search (run with the client's venv).

    client/.venv/bin/python -m bench.client_overhead URL COLLECTION --calls 2000

Both send the same vector search over one keep-alive connection, one call at a time, alternating
in rounds so drift in the server affects both alike; prints medians and their difference as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx
from akidb_client import AkiDB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("url")
    p.add_argument("collection")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args()
    with AkiDB(args.url) as db, httpx.Client(base_url=args.url) as raw:
        col = db.collection(args.collection)
        vector = col.page(limit=1, include_vector=True).documents[0].vector
        assert vector is not None
        body = {"vector": vector.tolist(), "k": args.k}
        path = f"/collections/{args.collection}/search"
        client_s: list[float] = []
        raw_s: list[float] = []
        for i in range(args.calls + 50):
            t0 = time.perf_counter()
            col.search(vector=vector, k=args.k)
            t1 = time.perf_counter()
            raw.post(path, json=body).json()
            t2 = time.perf_counter()
            if i >= 50:  # warm-up
                client_s.append(t1 - t0)
                raw_s.append(t2 - t1)
    client_ms, raw_ms = statistics.median(client_s) * 1000, statistics.median(raw_s) * 1000
    print(
        json.dumps(
            {
                "search_calls": args.calls,
                "search_client_ms": round(client_ms, 3),
                "search_raw_httpx_ms": round(raw_ms, 3),
                "search_overhead_ms": round(client_ms - raw_ms, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
