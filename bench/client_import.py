"""`akidb import` of N short texts (JSONL) from file to searchable, vs /embed on the same texts, same run;
then the client's overhead per search call against raw httpx.

    .venv/bin/python -m bench.client_import --docs 10000           # needs `make client-setup` first

The server runs with this interpreter (the server's venv); the CLI and the overhead probe run with
the client's venv (client/.venv), as a user would install them. Prints one JSON object:
- `embed_texts_per_s`: POST /embed, batches of `--batch`, `--concurrency` in flight;
- `import_docs_per_s`: the wall time of `akidb import FILE` (process start, file read, batches of
  `--batch` with `--concurrency` in flight, until every document is acknowledged, i.e. searchable);
- `import_vs_embed_pct` = import ÷ embed (the goal is >= 90);
- `search_overhead_ms`: median per-call time of `AkiDB.collection(c).search(vector=...)` minus that
  of the same request sent with raw httpx, one connection, sequential (the goal is <= 0.3 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from bench import corpus
from bench.collections import _drain, call
from bench.procs import ROOT, Stack, free_port

CLIENT_VENV = ROOT / "client" / ".venv" / "bin"


async def embed_rate(url: str, texts: list[str], args: argparse.Namespace) -> float:
    """Texts/s of POST /embed over the whole list."""
    batches = [texts[i : i + args.batch] for i in range(0, len(texts), args.batch)]
    async with aiohttp.ClientSession() as s:
        await call(s, url + "/embed", {"texts": texts[:64]})  # warm-up
        secs = await _drain(lambda i: call(s, url + "/embed", {"texts": batches[i]}), len(batches), args)
    return len(texts) / secs


def import_rate(url: str, path: Path, n: int, args: argparse.Namespace) -> float:
    """Docs/s of `akidb import` into a new collection, from process start to its exit (all acknowledged)."""
    cmd = [str(CLIENT_VENV / "akidb"), "--url", url, "import", str(path), "-c", "bench-import", "--create"]
    cmd += ["--batch-size", str(args.batch), "--concurrency", str(args.concurrency), "--no-progress"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    secs = time.perf_counter() - started
    with urllib.request.urlopen(url + "/collections/bench-import") as r:
        count = json.load(r)["document_count"]
    if count != n:
        raise AssertionError(f"imported {count} of {n}")
    return n / secs


def search_overhead(url: str, calls: int) -> dict[str, Any]:
    """Runs bench.client_overhead in the client's venv (it imports httpx and akidb_client)."""
    cmd = [str(CLIENT_VENV / "python"), "-m", "bench.client_overhead", url, "bench-import", "--calls", str(calls)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return dict(json.loads(out.stdout))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--docs", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=256, help="texts per request, both phases")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight, both phases")
    p.add_argument("--search-calls", type=int, default=2000)
    p.add_argument("--backend", default="auto")
    args = p.parse_args()
    if not (CLIENT_VENV / "akidb").exists():
        raise SystemExit("the client's venv is missing: run `make client-setup`")
    texts = corpus.load("short", args.docs)
    with (
        tempfile.TemporaryDirectory() as tmp,
        Stack(
            1, ("--backend", args.backend), ("--data-dir", tmp), http_port=free_port(), zmq_port=free_port()
        ) as stack,
    ):
        path = Path(tmp) / "docs.jsonl"
        path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
        embed = asyncio.run(embed_rate(stack.url, texts, args))
        imported = import_rate(stack.url, path, len(texts), args)
        overhead = search_overhead(stack.url, args.search_calls)
    result = {
        "docs": len(texts),
        "batch": args.batch,
        "concurrency": args.concurrency,
        "embed_texts_per_s": round(embed, 1),
        "import_docs_per_s": round(imported, 1),
        "import_vs_embed_pct": round(100 * imported / embed, 1),
        **overhead,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
