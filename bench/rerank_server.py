"""Reranking through the server (issue 22): /rerank and search + rerank, against in-process baselines, one sitting.

    .venv/bin/python -m bench.rerank_server                     # 5 alternating rounds, ~10 minutes on 2 cores
    .venv/bin/python -m bench.rerank_server --rounds 1 --seconds 3   # a minute, to prove it works

A real stack on loopback: the gateway, one MiniLM embedding worker and one reranker worker serving
bench/rerank.py's MiniLM-L6-size cross-encoder (random weights, all-MiniLM-L6-v2's tokenizer; made once
in the fixture venv) as ms-marco-MiniLM-L-6-v2, both OpenVINO with `--threads` threads at precision
`auto`. Three comparisons, their arms alternating within each round (order swapped every round):

1. throughput: pairs/s through POST /rerank (32 pairs of ~100 tokens per request, `--concurrency`
   callers back to back) vs sentence-transformers' CrossEncoder.predict in-process on the same pairs
   (a child in the fixture venv, torch on `--threads` threads). Target: >= 2x.
2. latency: POST /rerank of 50 candidates at `--rerank-rate` requests/s (the issue's 10; open loop,
   bench/loadgen.py) vs the same 50 pairs scored in this process by the worker's own Reranker (same
   backend, precision, threads), one call at a time. Target: the server's p95 <= 1.5x the in-process
   time (its p95). 10 requests/s is 500 pairs/s: a rate a loaded 2-core machine cannot carry, where
   the figure measures the queue; lower the rate there to read the server's own overhead.
3. search: POST /collections/c/search k=10 with `rerank: {candidates: 50}` vs the plain search, each
   at `--search-rate` requests/s open loop over a collection of `--docs` package descriptions, and
   the reranking's own cost: POST /rerank of each search's very 50 candidates (whole descriptions,
   longer than arm 2's ~100-token documents) at the same rate.
   Target: p95(search + rerank) - p95(search) <= that reranking's p95 + 2 ms.

Writes bench/results/rerank-server-<time>.json and prints it. Figures on a machine other engineers
load are low and wander; the per-round ratios (arms back to back) are the steadier reading.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench import corpus
from bench.backends import machine
from bench.loadgen import closed_loop, open_loop
from bench.procs import Stack, free_port
from bench.rerank import MODEL_DIR, RESULTS, ROOT, akidb_arm, ensure_model, make_pairs
from worker.pairs import Pair
from worker.reranker import Reranker

RERANKER = "ms-marco-MiniLM-L-6-v2"  # the registry name the MiniLM-size stand-in is served under


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def in_process_ms(reranker: Reranker, pairs: list[Pair], calls: int) -> list[float]:
    """Milliseconds per `score(pairs)`, one call at a time."""
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        reranker.score(pairs)
        out.append((time.perf_counter() - start) * 1000)
    return out


class Baseline:
    """CrossEncoder.predict in the fixture venv (bench/st_rerank.py), driven line by line."""

    def __init__(self, fixture_python: str, model_dir: Path, pairs: list[Pair], threads: int) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        pairs_file = RESULTS / "rerank-server-pairs.json"
        pairs_file.write_text(json.dumps(pairs))
        cmd = [fixture_python, "-m", "bench.st_rerank", "--model-path", str(model_dir), "--pairs", str(pairs_file)]
        self.child = subprocess.Popen(
            [*cmd, "--threads", str(threads)],
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdin is not None and self.child.stdout is not None
        self.stdin, self.stdout = self.child.stdin, self.child.stdout
        self.first = json.loads(self.stdout.readline())

    def pairs_per_s(self, calls: int) -> float:
        self.stdin.write(f"{calls}\n")
        self.stdin.flush()
        return float(json.loads(self.stdout.readline())["pairs_per_s"])

    def close(self) -> None:
        self.stdin.close()
        self.child.wait(timeout=60)


async def rerank_throughput(session: aiohttp.ClientSession, url: str, body: dict[str, Any], args: Any) -> float:
    async def call(i: int) -> None:
        async with session.post(url + "/rerank", json=body) as resp:
            assert resp.status == 200, await resp.text()
            await resp.read()

    done, elapsed = await closed_loop(call, args.concurrency, args.seconds)
    return done * len(body["texts"]) / elapsed


async def open_p95(
    session: aiohttp.ClientSession, url: str, path: str, bodies: list[Any], rate: float, s: float
) -> Any:
    async def call(i: int) -> None:
        async with session.post(url + path, json=bodies[i % len(bodies)]) as resp:
            assert resp.status == 200, await resp.text()
            await resp.read()

    return (await open_loop(call, rate, s)).summary()


async def fill(session: aiohttp.ClientSession, url: str, texts: list[str]) -> None:
    async with session.post(url + "/collections", json={"name": "c"}) as resp:
        assert resp.status == 201, await resp.text()
    for start in range(0, len(texts), 256):
        docs = [{"id": f"d{start + i}", "text": t} for i, t in enumerate(texts[start : start + 256])]
        async with session.post(url + "/collections/c/documents", json={"documents": docs}) as resp:
            assert resp.status == 201, await resp.text()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ensure_model(args.fixture_python, args.model_dir)
    local = akidb_arm(args.model_dir, "auto", args.threads)
    pairs32 = make_pairs(local.tokenizer, 32)
    query = pairs32[0][0]
    throughput_pairs = [(query, d) for _, d in pairs32]
    docs50 = [d for _, d in make_pairs(local.tokenizer, 50)]
    latency_pairs = [(query, d) for d in docs50]
    counts = local.tokenizer.encode(throughput_pairs).token_counts
    baseline = Baseline(args.fixture_python, args.model_dir, throughput_pairs, args.threads)
    ov = ("--backend", "openvino", "--threads", str(args.threads))
    data = tempfile.mkdtemp(prefix="akidb-bench-rerank-")
    gateway_args = ("--data-dir", data, "--set", "server.grpc_enabled=false")
    st = Stack(workers=1, worker_args=ov, gateway_args=gateway_args, http_port=free_port(), zmq_port=free_port())
    searches = corpus.load("short", 20, seed=1)
    results: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    results["pairs"] = {"throughput": len(throughput_pairs), "tokens_min": min(counts), "tokens_max": max(counts)}
    results["in_process_precision"] = local.model.precision
    rounds: dict[str, list[Any]] = {
        k: []
        for k in ("crossencoder", "rerank_http", "in_process", "rerank_50", "search", "search_rerank", "rerank_hits")
    }
    with st:
        st.add_worker("reranker", "--model", RERANKER, "--model-path", str(args.model_dir))
        st.wait_ready(2, timeout=300)
        async with aiohttp.ClientSession() as session:
            await fill(session, st.url, corpus.load("bodies", args.docs))
            body32 = {"query": query, "texts": [d for _, d in throughput_pairs]}
            bodies50 = [{"query": query, "texts": docs50}]
            plain = [{"query": q, "k": 10} for q in searches]
            reranked = [{**b, "rerank": {"candidates": 50}} for b in plain]
            # The reranking's own cost in the search arm: /rerank of each search's very candidates.
            candidates = []
            for q in searches:
                async with session.post(st.url + "/collections/c/search", json={"query": q, "k": 50}) as resp:
                    hits = (await resp.json())["results"]
                candidates.append({"query": q, "texts": [h["text"] for h in hits]})
            # Warm-up: every arm once (shapes, caches, connections), outside the figures.
            await rerank_throughput(session, st.url, body32, argparse.Namespace(concurrency=1, seconds=1))
            await open_p95(session, st.url, "/collections/c/search", reranked, 5, 2)
            in_process_ms(local, latency_pairs, 3)
            arms = {
                "crossencoder": lambda: baseline.pairs_per_s(args.calls),
                "rerank_http": lambda: rerank_throughput(session, st.url, body32, args),
                "in_process": lambda: in_process_ms(local, latency_pairs, args.local_calls),
                "rerank_50": lambda: open_p95(session, st.url, "/rerank", bodies50, args.rerank_rate, args.seconds),
                "search": lambda: open_p95(
                    session, st.url, "/collections/c/search", plain, args.search_rate, args.seconds
                ),
                "rerank_hits": lambda: open_p95(session, st.url, "/rerank", candidates, args.search_rate, args.seconds),
                "search_rerank": lambda: open_p95(
                    session, st.url, "/collections/c/search", reranked, args.search_rate, args.seconds
                ),
            }
            names = list(arms)
            for r in range(args.rounds):
                for name in names if r % 2 == 0 else names[::-1]:
                    got = arms[name]()
                    rounds[name].append(await got if asyncio.iscoroutine(got) else got)
                print(f"round {r + 1} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    baseline.close()
    shutil.rmtree(data, ignore_errors=True)
    ce, http = rounds["crossencoder"], rounds["rerank_http"]
    results["throughput_pairs_per_s"] = {"crossencoder_predict": spread(ce), "rerank_http": spread(http)}
    results["throughput_ratio"] = {
        "of_medians": round(statistics.median(http) / statistics.median(ce), 2),
        "per_round": [round(a / b, 2) for a, b in zip(http, ce, strict=True)],
    }
    local_p95 = [float(np.percentile(ms, 95)) for ms in rounds["in_process"]]
    local_p50 = [float(np.percentile(ms, 50)) for ms in rounds["in_process"]]
    server_p95 = [s["p95_ms"] for s in rounds["rerank_50"]]
    results["rerank_50"] = {
        "server_p95_ms": spread(server_p95),
        "server_p50_ms": spread([s["p50_ms"] for s in rounds["rerank_50"]]),
        "in_process_p95_ms": spread(local_p95),
        "in_process_p50_ms": spread(local_p50),
        "ratio_p95_per_round": [round(a / b, 2) for a, b in zip(server_p95, local_p95, strict=True)],
        "errors": [s["errors"] for s in rounds["rerank_50"]],
    }
    plain_p95 = [s["p95_ms"] for s in rounds["search"]]
    rr_p95 = [s["p95_ms"] for s in rounds["search_rerank"]]
    results["search"] = {
        "plain_p95_ms": spread(plain_p95),
        "rerank_p95_ms": spread(rr_p95),
        "difference_p95_ms_per_round": [round(a - b, 2) for a, b in zip(rr_p95, plain_p95, strict=True)],
        # The reranking's own p95 (/rerank of the same searches' candidates, same rate) + 2 ms.
        "rerank_of_the_candidates_p95_ms": spread([s["p95_ms"] for s in rounds["rerank_hits"]]),
        "budget_ms_per_round": [round(s["p95_ms"] + 2, 2) for s in rounds["rerank_hits"]],
        "errors": [s["errors"] for s in rounds["search"] + rounds["search_rerank"]],
    }
    results["raw_rounds"] = rounds | {"in_process": [[round(x, 2) for x in ms] for ms in rounds["in_process"]]}
    results["load_avg_at_end"] = os.getloadavg()
    return results


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--fixture-python", default=str(ROOT / ".fixture-venv" / "bin" / "python"))
    p.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=10.0, help="per load arm per round")
    p.add_argument("--calls", type=int, default=5, help="CrossEncoder calls of 32 pairs per round")
    p.add_argument("--local-calls", type=int, default=20, help="in-process calls of the 50 pairs per round")
    p.add_argument(
        "--rerank-rate",
        type=float,
        default=10.0,
        help="/rerank requests/s of 50 pairs (the issue's 10; lower it "
        "where the machine cannot carry 500 pairs/s, or the figure is queueing, not the server's overhead)",
    )
    p.add_argument("--concurrency", type=int, default=2, help="/rerank callers back to back (throughput arm)")
    p.add_argument("--search-rate", type=float, default=5.0, help="searches/s in the search arms")
    p.add_argument("--docs", type=int, default=2000, help="documents in the searched collection")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    results = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"rerank-server-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "raw_rounds"}, indent=2))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
