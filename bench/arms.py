"""One load, several gateway configurations, one run: each arm is a fresh stack sent the same requests.

    python -m bench.arms --load embed1 --rate 50 --arm uvloop= --arm asyncio=server.uvloop=false
    python -m bench.arms --load text_search_zipf --arm on=cache.max_bytes=67108864 --arm off=cache.max_bytes=0

--arm NAME=KEY=VALUE[,KEY=VALUE...]: a name and the gateway `--set`s that make the arm ("NAME=" for the
defaults); a set written `w:KEY=VALUE` goes to the worker instead (`w:embedding.num_threads=1`).
--rounds N runs every arm N times, alternating (a, b, a, b, ...), and reports each arm's median p50/p95 too:
on a shared machine, alternation keeps a burst of someone else's load from landing on one arm only.
Reports, per arm: latency (open loop, from each request's scheduled start), the embedding
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
import numpy as np

from bench.collections import scrape
from bench.loadgen import open_loop
from bench.procs import Stack
from bench.query_loads import LOADS, prepare

QUANTILES = ("p50_ms", "p95_ms", "p99_ms")


def parse_arm(text: str) -> tuple[str, list[str], list[str]]:
    """NAME=KEY=VALUE,w:KEY=VALUE -> (name, gateway sets, worker sets)."""
    name, _, sets = text.partition("=")
    parts = [s for s in sets.split(",") if s]
    return name, [s for s in parts if not s.startswith("w:")], [s[2:] for s in parts if s.startswith("w:")]


def counters(url: str) -> dict[str, float]:
    names = ("akidb_embedding_cache_hits_total", "akidb_embedding_cache_misses_total",
             "akidb_embedding_batch_size_count", "akidb_worker_compute_seconds_sum",
             "akidb_worker_compute_seconds_count", "akidb_embedding_latency_seconds_sum",
             "akidb_embedding_latency_seconds_count")  # fmt: skip
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
        # Where a request's time went, as means: the worker's own job time (receipt to result), and
        # the gateway's embedding call (queue, ZeroMQ both ways, worker); the rest is HTTP and the client.
        "worker_compute_ms_mean": mean_ms(delta, "akidb_worker_compute_seconds"),
        "gateway_embed_ms_mean": mean_ms(delta, "akidb_embedding_latency_seconds"),
    }


def mean_ms(delta: dict[str, float], name: str) -> float:
    count = delta[name + "_count"]
    return round(1000 * delta[name + "_sum"] / count, 3) if count else 0.0


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
    p.add_argument("--rounds", type=int, default=1, help="run every arm this many times, alternating")
    p.set_defaults(**(defaults or {}))
    args = p.parse_args()
    arms = [parse_arm(a) for a in (args.arm or default_arms)]
    report: dict[str, Any] = {"load": args.load, "rate": args.rate, "duration_s": args.duration, "docs": args.docs,
                              "set": args.set, "arms": {}}  # fmt: skip
    if args.load == "text_search_zipf":
        report["zipf_s"] = args.zipf_s
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in arms}
    for _ in range(args.rounds):
        for name, sets, worker_sets in arms:
            with contextlib.ExitStack() as cleanup:
                data = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="akidb-arms-"))
                gw_args = ("--data-dir", data, "--set", "server.grpc_enabled=false",
                           *[a for kv in (*args.set, *sets) for a in ("--set", kv)])  # fmt: skip
                w_args = tuple(a for kv in worker_sets for a in ("--set", kv))
                with Stack(workers=args.workers, worker_args=w_args, gateway_args=gw_args, http_port=args.port,
                           zmq_port=args.port + 1) as stack:  # fmt: skip
                    runs[name].append(asyncio.run(run_arm(stack.url, args)))
    for name, sets, worker_sets in arms:
        arm: dict[str, Any] = {"set": sets, "worker_set": worker_sets}
        if args.rounds == 1:
            arm.update(runs[name][0])
        else:
            arm["rounds"] = runs[name]
            arm["median"] = {q: float(np.median([r["latency"][q] for r in runs[name]])) for q in QUANTILES}
        report["arms"][name] = arm
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
