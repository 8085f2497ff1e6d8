"""One load, several gateway configurations, one run: each arm is a fresh stack sent the same requests.

    python -m bench.arms --load embed1 --rate 50 --arm uvloop= --arm asyncio=server.uvloop=false
    python -m bench.arms --load text_search_zipf --arm on=cache.max_bytes=67108864 --arm off=cache.max_bytes=0

--arm NAME=KEY=VALUE[,KEY=VALUE...]: a name and the gateway `--set`s that make the arm ("NAME=" for the
defaults). Reports, per arm: latency (open loop, from each request's scheduled start), the embedding
cache's hit rate and the worker jobs sent during the measured phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
from typing import Any

import aiohttp

from bench.collections import scrape
from bench.loadgen import open_loop
from bench.procs import Stack
from bench.query_loads import LOADS, prepare


def parse_arm(text: str) -> tuple[str, list[str]]:
    name, _, sets = text.partition("=")
    return name, [s for s in sets.split(",") if s]


def counters(url: str) -> dict[str, float]:
    names = ("akidb_embedding_cache_hits_total", "akidb_embedding_cache_misses_total",
             "akidb_embedding_batch_size_count")  # fmt: skip
    return {n: scrape(url, n) for n in names}


async def run_arm(url: str, args: argparse.Namespace) -> dict[str, Any]:
    work = await prepare(url, args.load, args.docs, int(args.rate * args.duration), args.zipf_s)
    async with aiohttp.ClientSession() as s:
        for i in range(20):
            await work.warmup(s, i)
        before = counters(url)
        result = await open_loop(lambda i: work.request(s, i), args.rate, args.duration)
    after = counters(url)
    delta = {k: after[k] - before[k] for k in after}
    looked_up = delta["akidb_embedding_cache_hits_total"] + delta["akidb_embedding_cache_misses_total"]
    return {
        "latency": result.summary(),
        "cache_hit_rate": round(delta["akidb_embedding_cache_hits_total"] / looked_up, 3) if looked_up else 0.0,
        "worker_jobs": int(delta["akidb_embedding_batch_size_count"]),
    }


def main(defaults: dict[str, Any] | None = None, default_arms: tuple[str, ...] = ("default=",)) -> None:
    """Run every arm; `defaults` and `default_arms` let a named benchmark (bench.cache) preset them."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--load", choices=LOADS, default="embed1")
    p.add_argument("--arm", action="append", default=[], metavar="NAME=KEY=VALUE,...")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="gateway config for every arm")
    p.add_argument("--rate", type=float, default=50)
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--docs", type=int, default=10_000, help="collection size for the search loads")
    p.add_argument("--zipf-s", type=float, default=1.1, help="text_search_zipf: popularity exponent")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--port", type=int, default=18380)
    p.set_defaults(**(defaults or {}))
    args = p.parse_args()
    arms = [parse_arm(a) for a in (args.arm or default_arms)]
    report: dict[str, Any] = {"load": args.load, "rate": args.rate, "duration_s": args.duration, "docs": args.docs,
                              "set": args.set, "arms": {}}  # fmt: skip
    if args.load == "text_search_zipf":
        report["zipf_s"] = args.zipf_s
    for name, sets in arms:
        with contextlib.ExitStack() as cleanup:
            data = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="akidb-arms-"))
            gw_args = ("--data-dir", data, "--set", "server.grpc_enabled=false",
                       *[a for kv in (*args.set, *sets) for a in ("--set", kv)])  # fmt: skip
            with Stack(workers=args.workers, gateway_args=gw_args, http_port=args.port,
                       zmq_port=args.port + 1) as stack:  # fmt: skip
                report["arms"][name] = {"set": sets, **asyncio.run(run_arm(stack.url, args))}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
