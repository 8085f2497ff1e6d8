"""Dense, keyword and hybrid search on a retrieval task with known answers, from apt's package lists.

Every Debian package is a **document**: its one-line summary and the first paragraph of its long
description. A package whose long description goes on past that paragraph gives a **query**: one
sentence from the middle of the rest (so never text of the document itself). Each query has exactly
one relevant document, its own package's; packages without a second paragraph are documents only
(distractors). Sentences that occur in more than one package (boilerplate such as "This package
contains the debugging symbols") are never queries, and packages with the same summary or document
are kept once, so the one answer is unambiguous.

One run loads `--docs` documents (embedded by AkiDB: one gateway, one worker), asks `--queries` of them
in each mode (k 10) and reports recall@10 and MRR@10; then sends fresh query texts (never embedded
before, so the embedding cache answers none) open loop at `--rate` per second for `--seconds`, dense
then hybrid, and reports p50/p95/p99 latency.

    python -m bench.hybrid                      # 20,000 documents, 1,000 queries, 50 req/s for 30 s
    python -m bench.hybrid --docs 2000 --queries 200 --seconds 5    # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import corpus
from bench.backends import machine
from bench.collections import call
from bench.loadgen import open_loop
from bench.procs import Stack, free_port

MODES = ("dense", "keyword", "hybrid")
K = 10
# A sentence ends at . ! or ? followed by a space; "e.g. " and version numbers make some splits wrong,
# which only makes a query a little shorter or longer.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
MIN_WORDS = 6  # a shorter "sentence" (a heading, a list item) says too little to find anything by
MAX_WORDS = 60


@dataclass(frozen=True)
class Task:
    doc_id: str
    document: str  # summary + first paragraph
    query: str | None  # a sentence from the middle of the rest; None: a package with nothing to ask about


def paragraphs(lines: list[str]) -> list[str]:
    """A long description's paragraphs (Debian separates them with a line of " ."), words joined by spaces."""
    out, current = [], []
    for line in lines:
        if line.strip() == ".":
            if current:
                out.append(" ".join(current))
            current = []
        elif line.strip():
            current.append(line.strip())
    if current:
        out.append(" ".join(current))
    return out


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if MIN_WORDS <= len(s.split()) <= MAX_WORDS]


def tasks(seed: int = 0) -> list[Task]:
    """Every package as a document, in a reproducible shuffled order; those with a long description to
    ask from carry a query (the others are there to be found by mistake)."""
    corpus.ensure_lists()
    candidates: dict[str, tuple[str, list[str]]] = {}  # summary -> (document, sentences after the first paragraph)
    for path in corpus.translation_files():
        for summary, lines in corpus.descriptions(corpus.read(path)):
            paras = paragraphs(lines)
            if paras and summary not in candidates:
                candidates[summary] = (f"{summary}. {paras[0]}", [s for p in paras[1:] for s in sentences(p)])
    seen = Counter(s for _, rest in candidates.values() for s in set(rest))
    firsts = Counter(doc for doc, _ in candidates.values())
    out = []
    for document, rest in (candidates[summary] for summary in sorted(candidates)):
        if firsts[document] > 1:
            continue
        unique = [s for s in rest if seen[s] == 1 and s not in document]
        out.append(Task(f"p{len(out)}", document, unique[len(unique) // 2] if unique else None))  # the middle one
    random.Random(seed).shuffle(out)
    return out


async def load(session: aiohttp.ClientSession, url: str, docs: list[Task], batch: int = 256) -> float:
    """The documents, embedded by AkiDB (two requests in flight); returns documents per second."""
    await call(session, url + "/collections", {"name": "hybrid"}, 201)
    started = time.perf_counter()
    gate = asyncio.Semaphore(2)

    async def one(start: int) -> None:
        async with gate:
            body = {"documents": [{"id": t.doc_id, "text": t.document} for t in docs[start : start + batch]]}
            await call(session, url + "/collections/hybrid/documents", body, 201)
        print(f"  loaded {min(start + batch, len(docs))}/{len(docs)}", file=sys.stderr, flush=True)

    await asyncio.gather(*(one(s) for s in range(0, len(docs), batch)))
    return len(docs) / (time.perf_counter() - started)


async def quality(session: aiohttp.ClientSession, url: str, asked: list[Task], per_request: int = 50) -> dict:
    """recall@10 and MRR@10 for each mode over the same queries (batch searches of `per_request`)."""
    out: dict[str, dict[str, float]] = {}
    for mode in MODES:
        hits, reciprocal = 0, 0.0
        for start in range(0, len(asked), per_request):
            chunk = asked[start : start + per_request]
            queries = [{"query": t.query, "k": K, "mode": mode, "include": []} for t in chunk]
            found = await call(session, url + "/collections/hybrid/search", {"queries": queries})
            for task, results in zip(chunk, found["results"], strict=True):
                ranked = [r["id"] for r in results]
                if task.doc_id in ranked:
                    hits += 1
                    reciprocal += 1 / (ranked.index(task.doc_id) + 1)
        out[mode] = {"recall@10": round(hits / len(asked), 4), "mrr@10": round(reciprocal / len(asked), 4)}
        print(f"  {mode}: {out[mode]}", file=sys.stderr, flush=True)
    return out


async def latency(session: aiohttp.ClientSession, url: str, texts: list[str], rate: float, seconds: float) -> dict:
    """Open-loop p50/p95/p99 for dense and hybrid text searches, each with its own never-seen query texts."""
    n = int(rate * seconds)
    warm = 50
    out = {}
    search = url + "/collections/hybrid/search"
    for m, mode in enumerate(("dense", "hybrid")):
        own = texts[m * (n + warm) : (m + 1) * (n + warm)]

        async def send(i: int, own: list[str] = own, mode: str = mode) -> None:
            await call(session, search, {"query": own[i], "k": K, "mode": mode, "include": []})

        for i in range(warm):
            await send(n + i)
        result = await open_loop(send, rate, seconds)
        out[mode] = result.summary()
        print(f"  {mode} at {rate}/s: {out[mode]}", file=sys.stderr, flush=True)
    return out


def table(results: dict[str, Any]) -> str:
    q, lat = results["quality"], results["latency"]
    lines = [
        f"{results['docs']:,} documents, {results['queries']:,} queries, k {K}; "
        f"machine: {results['machine']['cpu']} ({results['machine']['cores']} cores)",
        "",
        "| mode | recall@10 | MRR@10 | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        ms = lat.get(mode)
        timing = f"{ms['p50_ms']} | {ms['p95_ms']} | {ms['p99_ms']}" if ms else "— | — | —"
        lines.append(f"| {mode} | {q[mode]['recall@10']:.3f} | {q[mode]['mrr@10']:.3f} | {timing} |")
    lines.append(f"\n(latency: open loop at {results['rate']}/s for {results['seconds']} s per mode, client side)")
    return "\n".join(lines)


async def run(args: argparse.Namespace, url: str, all_tasks: list[Task]) -> dict[str, Any]:
    docs = all_tasks[: args.docs]
    askable = [t for t in docs if t.query is not None]
    asked = random.Random(1).sample(askable, args.queries)
    # Latency queries: the other packages' sentences, never embedded before (the cache answers none).
    taken = {t.doc_id for t in asked}
    fresh = [t.query for t in all_tasks if t.query is not None and t.doc_id not in taken]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        ingest = await load(session, url, docs)
        quality_ = await quality(session, url, asked)
        latency_ = await latency(session, url, fresh, args.rate, args.seconds)
    return {"ingest_docs_per_s": round(ingest, 1), "quality": quality_, "latency": latency_}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=20_000, help="documents in the collection")
    p.add_argument("--queries", type=int, default=1000, help="queries asked in each mode for recall and MRR")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second in the latency phase")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each latency phase")
    p.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "hybrid.json"), help="where to write the full results"
    )
    args = p.parse_args()
    all_tasks = tasks()
    askable = sum(t.query is not None for t in all_tasks[: args.docs])
    fresh = sum(t.query is not None for t in all_tasks) - args.queries
    if len(all_tasks) < args.docs or askable < args.queries or fresh < 2 * (int(args.rate * args.seconds) + 50):
        raise SystemExit(f"apt's lists hold {len(all_tasks)} packages, {askable} with a query in the first --docs")
    print(f"{len(all_tasks)} packages, {askable} of the first {args.docs} with a query", file=sys.stderr)
    results: dict[str, Any] = {"machine": machine(), "docs": args.docs, "queries": args.queries}
    results |= {"rate": args.rate, "seconds": args.seconds}
    with (
        tempfile.TemporaryDirectory() as data,
        Stack(gateway_args=("--data-dir", data), http_port=free_port(), zmq_port=free_port()) as stack,
    ):
        results |= asyncio.run(run(args, stack.url, all_tasks))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nfull results: {args.out}")


if __name__ == "__main__":
    main()
