"""A soak: an open-loop mixed workload for a given time against `make run`'s shape, with faults, then an audit.

    python -m bench.soak --minutes 60 --docs 100000      # the published run (docs/reliability.md)
    python -m bench.soak --minutes 5 --docs 2000         # the short variant

One gateway and one worker (deploy/akidb.yaml, the embedding cache on, as `make run` starts them), the
data dir on a tmpfs of its own (root only; otherwise the disk fault is skipped, and the summary says
so). `--docs` documents are loaded first (texts from apt's package lists, random vectors). Then, at
`--rate` requests/s leaving on a Poisson schedule whether or not earlier ones answered: `/embed` of short
and long texts, inserts with text and with vectors, vector, text, hybrid, filtered and batch searches;
a collection snapshot every `--snapshot-every` minutes (one at 40 % in a shorter run) and one
re-embedding at 55 %. Faults on the schedule of `bench/soak_faults.py`.

At the end, the audit: every acknowledged document present exactly once, nothing refused stored, the
index's count = the database's = the full-text index's, and every snapshot restorable to its count.
It writes `summary.json` (per-minute records, faults, recoveries, memory, audit) and `soak.png` to
`bench/results/soak-<time>/`, with the processes' logs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson

from bench import soak_report as report
from bench.collection_corpus import texts as corpus_texts
from bench.procs import ROOT, Stack, free_port, rss_mb
from bench.soak_faults import Faults, Window, ready, schedule

COLLECTION = "soak"
DIMENSION = 384
TOPICS = [f"t{i}" for i in range(8)]
# Operation → share of requests. Inserts stay a small share: an hour adds ~25k documents to the corpus.
MIX = {
    "embed_short": 20,
    "embed_long": 5,
    "insert_text": 5,
    "insert_vector": 5,
    "search_vector": 15,
    "search_text": 15,
    "search_hybrid": 10,
    "search_filtered": 15,
    "search_batch": 10,
}
READ_OPS = {"embed_short", "search_vector", "search_text", "search_hybrid", "search_filtered", "search_batch"}
MAX_IN_FLIGHT = 256  # beyond this the client itself is the bottleneck: requests are skipped and counted
REQUEST_TIMEOUT_S = 60.0
# Statuses after which nothing of an insert can be stored; after others (500, 504, a lost connection) it may be.
REFUSED = {502, 503, 507}


@dataclass
class Ledger:
    """Every document id the run sent, by what the gateway answered."""

    preloaded: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)

    def record(self, ids: list[str], status: int | str) -> None:
        if status == 201:
            self.acked.update(ids)
        elif isinstance(status, int) and (status < 500 or status in REFUSED):
            self.refused.update(ids)
        else:
            self.unknown.update(ids)


class Workload:
    """The operations, each one request; results go to `calls` and the ledger."""

    def __init__(self, url: str, session: aiohttp.ClientSession, texts: list[str], seed: int) -> None:
        self.url, self.session, self.texts = url, session, texts
        self.rng = random.Random(seed)
        self.calls: list[report.Call] = []
        self.ledger = Ledger()
        self._next_id = 0

    def _vector(self) -> list[float]:
        v = np.array([self.rng.gauss(0, 1) for _ in range(DIMENSION)], dtype=np.float32)
        return (v / np.linalg.norm(v)).tolist()

    def _doc(self, with_vector: bool) -> dict[str, Any]:
        self._next_id += 1
        doc: dict[str, Any] = {
            "id": f"s{self._next_id}",
            "text": self.rng.choice(self.texts),
            "metadata": {"topic": self.rng.choice(TOPICS), "n": self._next_id},
        }
        if with_vector:
            doc["vector"] = self._vector()
        return doc

    def body(self, op: str) -> tuple[str, dict[str, Any]]:
        """(path, JSON body) of one request of `op`."""
        search = f"/collections/{COLLECTION}/search"
        text = self.rng.choice(self.texts)
        match op:
            case "embed_short":
                return "/embed", {"texts": self.rng.sample(self.texts, self.rng.randint(1, 4))}
            case "embed_long":
                return "/embed", {"texts": [" ".join(self.rng.sample(self.texts, 40))]}
            case "insert_text":
                return f"/collections/{COLLECTION}/documents", {"documents": [self._doc(False) for _ in range(2)]}
            case "insert_vector":
                return f"/collections/{COLLECTION}/documents", {"documents": [self._doc(True) for _ in range(8)]}
            case "search_vector":
                return search, {"vector": self._vector(), "k": 10}
            case "search_text":
                return search, {"query": text, "k": 10}
            case "search_hybrid":
                return search, {"query": text, "mode": "hybrid", "k": 10}
            case "search_filtered":
                return search, {"vector": self._vector(), "k": 10, "filter": {"topic": self.rng.choice(TOPICS)}}
            case "search_batch":
                queries = [{"vector": self._vector(), "k": 5} for _ in range(3)] + [{"query": text, "k": 5}]
                return search, {"queries": queries}
        raise ValueError(op)

    async def call(self, op: str, method: str, path: str, body: Any = None) -> tuple[int | str, Any]:
        """One request, recorded; its status (or the error's name) and its JSON body."""
        start = time.time()
        status: int | str
        data: Any = None
        try:
            async with self.session.request(method, self.url + path, **json_body(body)) as resp:
                status = resp.status
                with contextlib.suppress(ValueError, aiohttp.ContentTypeError):
                    data = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = type(exc).__name__
        self.calls.append(report.Call(op, start, time.time(), status))
        return status, data

    async def one(self, op: str) -> None:
        path, body = self.body(op)
        status, _ = await self.call(op, "POST", path, body)
        if op.startswith("insert"):
            self.ledger.record([d["id"] for d in body["documents"]], status)


def json_body(body: Any) -> dict[str, Any]:
    """aiohttp arguments for a JSON body, as a stream (a large `bytes` body makes aiohttp warn)."""
    if body is None:
        return {}
    return {"data": io.BytesIO(orjson.dumps(body)), "headers": {"Content-Type": "application/json"}}


async def preload(url: str, session: aiohttp.ClientSession, texts: list[str], ledger: Ledger, seed: int) -> None:
    """`len(texts)` documents with random unit vectors, 1,000 a request."""
    rng = np.random.default_rng(seed)
    for start in range(0, len(texts), 1000):
        chunk = texts[start : start + 1000]
        vectors = rng.standard_normal((len(chunk), DIMENSION)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        docs = [
            {"id": f"p{start + i}", "text": t, "vector": vectors[i].tolist(), "metadata": {"topic": TOPICS[i % 8]}}
            for i, t in enumerate(chunk)
        ]
        async with session.post(f"{url}/collections/{COLLECTION}/documents", **json_body({"documents": docs})) as resp:
            assert resp.status == 201, await resp.text()
        ledger.preloaded.update(d["id"] for d in docs)


class Run:
    """One soak: the stack, the load, the faults, the samples."""

    def __init__(self, args: argparse.Namespace, stack: Stack, disk: Path | None, session: aiohttp.ClientSession,
                 texts: list[str]) -> None:  # fmt: skip
        self.args, self.stack, self.session = args, stack, session
        self.duration_s = args.minutes * 60
        self.work = Workload(stack.url, session, texts, args.seed)
        self.faults = Faults(stack, disk)
        self.windows: list[Window] = []
        self.rss: list[tuple[float, dict[str, float]]] = []
        self.snapshots: list[dict[str, Any]] = []
        self.reembed: dict[str, Any] = {}
        self.skipped = 0
        self.t0 = 0.0

    async def run(self) -> None:
        self.t0 = time.time()
        side = [
            asyncio.create_task(self._sample_rss()),
            asyncio.create_task(self._inject_faults()),
            asyncio.create_task(self._snapshots()),
            asyncio.create_task(self._reembed()),
            asyncio.create_task(self._progress()),
        ]
        await self._load()
        for task in side[:1] + side[4:]:
            task.cancel()
        await asyncio.gather(*side, return_exceptions=True)

    async def _load(self) -> None:
        """Requests at Poisson arrivals of `--rate` a second, never waiting for answers (open loop)."""
        rng = random.Random(self.args.seed)
        ops, weights = list(MIX), list(MIX.values())
        in_flight: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        start, at = loop.time(), 0.0
        while at < self.duration_s:
            at += rng.expovariate(self.args.rate)
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            if len(in_flight) >= MAX_IN_FLIGHT:
                self.skipped += 1
                continue
            task = asyncio.create_task(self.work.one(rng.choices(ops, weights)[0]))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight, return_exceptions=True)

    async def _sample_rss(self) -> None:
        while True:
            procs = self.stack.procs
            names = ["gateway", *(f"worker-{i}" for i in range(len(procs) - 1))]
            self.rss.append((time.time(), {n: rss_mb(p.pid) for n, p in zip(names, procs, strict=True)}))
            await asyncio.sleep(5)

    async def _inject_faults(self) -> None:
        for planned in schedule(self.duration_s, self.args.fault_every, self.args.quiet):
            await asyncio.sleep(max(0.0, self.t0 + planned.at_s - time.time()))
            window = Window(planned.kind, time.time())
            self.windows.append(window)  # shown as open while it runs: requests meanwhile are the fault's
            done = await asyncio.to_thread(self.faults.inject, planned.kind)
            window.start, window.end, window.note = done.start, done.end, done.note
            print(f"fault {planned.kind}: {window.to_dict(self.t0)}", flush=True)

    async def _snapshots(self) -> None:
        every = self.args.snapshot_every * 60
        times = [every * i for i in range(1, int(self.duration_s // every) + 1) if every * i < self.duration_s]
        for at in times or [self.duration_s * 0.4]:
            await asyncio.sleep(max(0.0, self.t0 + at - time.time()))
            status, body = await self.retrying("snapshot", f"/collections/{COLLECTION}/snapshots")
            self.snapshots.append({"at_s": round(time.time() - self.t0, 1), "status": status, **(body or {})})

    async def _reembed(self) -> None:
        await asyncio.sleep(max(0.0, self.t0 + self.duration_s * 0.55 - time.time()))
        body = {"model": self.args.model}
        status, job = await self.retrying("reembed", f"/collections/{COLLECTION}/reembed", body)
        self.reembed = {"at_s": round(time.time() - self.t0, 1), "status": status, "job": job}

    async def retrying(self, op: str, path: str, body: Any = None) -> tuple[int | str, Any]:
        """POST as an operator would: again every 2 s while the gateway is away or has no worker (up to 60 s)."""
        end = time.time() + 60
        while True:
            status, data = await self.work.call(op, "POST", path, body)
            if not (isinstance(status, str) or status == 503) or time.time() > end:
                return status, data
            await asyncio.sleep(2)

    async def _progress(self) -> None:
        minute = 0
        while True:
            await asyncio.sleep(max(0.0, self.t0 + (minute + 1) * 60 - time.time()))
            rec = report.per_minute(self.work.calls, self.rss, self.t0, minute + 1)[minute]
            print(f"minute {minute}: {rec['requests_per_s']} req/s, all {rec['all_ok']}, "
                  f"statuses {rec['statuses']}, rss {rec['rss_mb']}", flush=True)  # fmt: skip
            minute += 1


async def settle_reembed(run: Run, within_s: float) -> None:
    """Wait (bounded) for the re-embedding job to end; record its last status."""
    job = (run.reembed.get("job") or {}).get("id")
    if not job:
        return
    end = time.time() + within_s
    while True:
        status, body = await run.work.call("reembed_status", "GET", f"/collections/{COLLECTION}/jobs/{job}")
        run.reembed["final"] = body
        if status != 200 or body.get("state") != "running" or time.time() > end:
            return
        await asyncio.sleep(2)


async def audit_live(run: Run) -> dict[str, Any]:
    """What the running gateway shows: its index count, every document (once?), and each snapshot restored."""
    work = run.work
    _, info = await work.call("audit", "GET", f"/collections/{COLLECTION}")
    ids: list[str] = []
    after, total = 0, None
    while True:
        status, page = await work.call("audit", "GET", f"/collections/{COLLECTION}/documents?limit=1000&after={after}")
        assert status == 200, page
        ids += [d["id"] for d in page["documents"]]
        total = page["total"]
        if page["next"] is None:
            break
        after = int(page["next"])
    found = set(ids)
    led = work.ledger
    restored = [await restore(work, s, i) for i, s in enumerate(run.snapshots) if s.get("status") == 201]
    return {
        "collection_id": info["id"],
        "index_count": info["document_count"],
        "listed": len(ids),
        "listed_total": total,
        "duplicates": len(ids) - len(found),
        "acknowledged": len(led.acked),
        "acknowledged_lost": sorted(led.acked - found)[:20],
        "acknowledged_lost_count": len(led.acked - found),
        "preloaded_lost_count": len(led.preloaded - found),
        "refused": len(led.refused),
        "refused_but_stored_count": len(led.refused & found),
        "unknown": len(led.unknown),
        "unknown_stored": len(led.unknown & found),
        "unexpected_count": len(found - led.acked - led.unknown - led.preloaded),
        "snapshots": restored,
    }


async def restore(work: Workload, snap: dict[str, Any], i: int) -> dict[str, Any]:
    """Download a snapshot, restore it as a new collection, compare its count, delete it again."""
    name = snap["name"]
    with tempfile.NamedTemporaryFile(suffix=".akidb-snapshot") as f:
        async with work.session.get(f"{work.url}/collections/{COLLECTION}/snapshots/{name}") as resp:
            assert resp.status == 200, await resp.text()
            async for chunk in resp.content.iter_chunked(1 << 20):
                f.write(chunk)
        f.flush()
        target = f"soak-restored-{i}"
        with open(f.name, "rb") as body:  # noqa: ASYNC230 (aiohttp streams it; the client is all this loop serves)
            async with work.session.post(
                f"{work.url}/collections/restore?name={target}",
                data=body,
                headers={"Content-Type": "application/octet-stream"},
            ) as resp:
                status, data = resp.status, await resp.json()
    count = data.get("document_count") if status == 201 else None
    if status == 201:
        await work.call("audit", "DELETE", f"/collections/{target}")
    return {"name": name, "documents": snap.get("documents"), "restore_status": status, "restored_count": count,
            "restorable": status == 201 and count == snap.get("documents")}  # fmt: skip


def audit_disk(data_dir: Path, collection_id: str) -> dict[str, int]:
    """The stopped gateway's database: documents, vectors and full-text rows (FTS5's one docsize row each)."""
    db = data_dir / "collections" / collection_id / "documents.sqlite3"
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        count = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("documents", "vectors")}
        count["fulltext"] = conn.execute("SELECT COUNT(*) FROM documents_fts_docsize").fetchone()[0]
    finally:
        conn.close()
    return count


def verdict(audit: dict[str, Any], errors: dict[str, Any]) -> dict[str, bool]:
    """The targets a run of any length must meet (timing targets are read from the figures, not asserted)."""
    disk = audit.get("disk", {})
    counts = {audit["index_count"], audit["listed"], audit["listed_total"], *disk.values()}
    return {
        "no_acknowledged_write_lost": audit["acknowledged_lost_count"] == 0 and audit["preloaded_lost_count"] == 0,
        "each_document_once": audit["duplicates"] == 0 and audit["unexpected_count"] == 0,
        "nothing_refused_stored": audit["refused_but_stored_count"] == 0,
        "counts_agree": len(counts) == 1 and len(disk) == 3,
        "snapshots_restorable": bool(audit["snapshots"]) and all(s["restorable"] for s in audit["snapshots"]),
        "no_5xx_outside_fault_windows": errors["server_errors_outside_windows"] == 0,
    }


@contextlib.contextmanager
def data_disk(size_mb: int) -> Any:
    """A data dir on a tmpfs of `size_mb` (root only), else on the ordinary disk: (dir, the disk's root or None)."""
    root = Path(tempfile.mkdtemp(prefix="akidb-soak-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(root)],
                             capture_output=True).returncode == 0  # fmt: skip
    try:
        yield root / "data", (root if mounted else None)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(root)], check=False)
        subprocess.run(["rm", "-rf", str(root)], check=False)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out) / time.strftime("soak-%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    texts = corpus_texts(max(args.docs, 5000))
    size_mb = args.disk_mb or int(512 + args.docs * 0.04)
    with data_disk(size_mb) as (data_dir, disk):
        config = str(ROOT / "deploy" / "akidb.yaml")
        stack = Stack(
            workers=1,
            worker_args=("--config", config),
            gateway_args=("--config", config, "--data-dir", str(data_dir), "--set", f"server.grpc_port={free_port()}"),
            http_port=free_port(),
            zmq_port=free_port(),
            cache=True,
            log_dir=out / "logs",
        )
        with stack:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                async with session.post(f"{stack.url}/collections", json={"name": COLLECTION}) as resp:
                    assert resp.status == 201, await resp.text()
                run = Run(args, stack, disk, session, texts[: max(args.docs, 5000)])
                started = time.time()
                await preload(stack.url, session, texts[: args.docs], run.work.ledger, args.seed)
                print(f"preloaded {args.docs} documents in {time.time() - started:.1f} s", flush=True)
                await run.run()
                await asyncio.to_thread(wait_whole, stack.url)
                await settle_reembed(run, within_s=args.minutes * 6)
                audit = await audit_live(run)
        audit["disk"] = audit_disk(data_dir, audit["collection_id"])
    minutes = math.ceil(run.duration_s / 60)
    errors = report.fault_errors(run.work.calls, run.windows)
    summary = {
        "command": " ".join(sys.argv),
        "args": vars(args),
        "cpu": cpu_model(),
        "data_disk": f"tmpfs {size_mb} MiB" if disk else "the ordinary disk (not root): disk fault skipped",
        "requests": len(run.work.calls),
        "skipped_client_overload": run.skipped,
        "per_minute": report.per_minute(run.work.calls, run.rss, run.t0, minutes),
        "faults": [w.to_dict(run.t0) for w in run.windows],
        "errors": errors,
        "recoveries": report.recoveries(run.work.calls, run.windows, READ_OPS),
        "memory": report.memory(run.rss, run.t0, run.duration_s),
        "snapshots": run.snapshots,
        "reembed": run.reembed,
        "audit": audit,
    }
    summary["verdict"] = verdict(audit, errors)
    not_plotted = report.plot(out / "soak.png", run.work.calls, run.rss, run.windows, run.t0, run.duration_s)
    summary["plot"] = not_plotted or str(out / "soak.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"summary: {out / 'summary.json'}\nverdict: {summary['verdict']}", flush=True)
    return summary


def wait_whole(url: str, within_s: float = 120) -> None:
    end = time.time() + within_s
    while not ready(url, writable=True) and time.time() < end:
        time.sleep(0.2)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60, help="how long the load runs (default 60)")
    p.add_argument("--docs", type=int, default=100_000, help="documents loaded before it (default 100,000)")
    p.add_argument("--rate", type=float, default=15, help="requests per second, open loop (default 15)")
    p.add_argument("--fault-every", type=float, default=60, help="least seconds between two faults (default 60)")
    p.add_argument("--quiet", type=float, default=45, help="seconds before the first fault (default 45)")
    p.add_argument("--snapshot-every", type=float, default=10, help="minutes between collection snapshots")
    p.add_argument("--disk-mb", type=int, default=0, help="the data dir's tmpfs (default 512 + 0.04 per document)")
    p.add_argument("--model", default="all-MiniLM-L6-v2", help="the re-embedding's model (default: the same one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), help="results go to OUT/soak-<time>/")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    summary = asyncio.run(soak(parse(argv)))
    return 0 if all(summary["verdict"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
