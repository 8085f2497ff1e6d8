"""Where memory grows: the worker's RSS against distinct input shapes, and the gateway's Python heap under load.

    python -m bench.memory worker --shapes 400        # RSS per arm after every 50 new (texts, tokens) shapes
    python -m bench.memory gateway --rounds 6         # tracemalloc: the gateway's growth by line, round on round
    python -m bench.memory grid-cost                  # the time embedding.shape_grid costs, arms taking turns
    python -m bench.memory stream --batches 800       # cold caches: time and RSS of a stream of new batches per arm

`worker`: each arm runs in a fresh process: the OpenVINO encoder `akidb-worker` builds (no static shape
buckets; `embedding.shape_grid` as the arm says), then passes of
random token ids in `--shapes` distinct (texts × tokens) shapes, then the same shapes again (a cache
that is full does not grow on the second pass; a leak does). Arms: the defaults; OpenVINO's CPU
runtime cache capped (`CPU_RUNTIME_CACHE_CAPACITY`, the plugin's per-shape kernel cache, 5,000 entries by
default); glibc held to two malloc arenas (`MALLOC_ARENA_MAX=2`); both.

`gateway`: a real gateway process with `PYTHONTRACEMALLOC` on and one real worker; rounds of mixed
load (new texts to embed, inserts, searches, filters); after each round the gateway writes a tracemalloc
snapshot (SIGUSR2 → `gateway.api.debug`), and this prints the lines whose allocations grew most between
the second round and the last, with RSS per round. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

import numpy as np

from bench.procs import ROOT, rss_mb

ARMS: dict[str, tuple[dict[str, str], int | None, str]] = {
    # name: (environment, CPU_RUNTIME_CACHE_CAPACITY or None for the plugin's default, embedding.shape_grid)
    "grid_4x16": ({}, None, "4x16"),
    "grid_2x8": ({}, None, "2x8"),
    "no_grid": ({}, None, "1x1"),
    "runtime_cache_64": ({}, 64, "1x1"),
    "arenas_2": ({"MALLOC_ARENA_MAX": "2"}, None, "1x1"),
    "both": ({"MALLOC_ARENA_MAX": "2"}, 64, "1x1"),
    # oneDNN's own primitive cache (OpenVINO's CPU plugin is built on oneDNN), capped too
    "onednn_cache_16": ({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16", "DNNL_PRIMITIVE_CACHE_CAPACITY": "16"}, 64, "1x1"),
    # glibc serves blocks of 64 KiB and up from mmap, so a freed buffer goes back to the kernel at once
    "mmap_64k": ({"MALLOC_MMAP_THRESHOLD_": "65536"}, None, "1x1"),
}


def shapes(n: int, seed: int = 0, budget: int = 0) -> list[tuple[int, int]]:
    """`n` distinct (texts, tokens) shapes of 1-32 texts of 4-256 tokens; with `budget`, only those a worker
    runs (at most `budget` padded tokens a pass, as `worker/embedder.py` cuts them, or one text alone)."""
    rng = np.random.default_rng(seed)
    seen: dict[tuple[int, int], None] = {}
    while len(seen) < n:
        rows, width = int(rng.integers(1, 33)), int(rng.integers(4, 257))
        if not budget or rows == 1 or rows * width <= budget:
            seen[(rows, width)] = None
    return list(seen)


def worker_arm(n_shapes: int, capacity: int | None, every: int, budget: int, grid: str) -> dict[str, Any]:
    """In this process: the worker's encoder, then every shape twice; RSS (MiB) after each `every` shapes."""
    from shared.config import load_config, parse_shape_grid
    from worker.backends import openvino_bert
    from worker.loader import locate

    _capped(capacity)
    cfg = load_config(None, {}, [])
    source = locate(cfg.embedding)
    encoder = openvino_bert.OpenVinoBertEncoder(source, "auto", 0, None, (), parse_shape_grid(grid))
    pid = os.getpid()
    rss = {"built": rss_mb(pid)}
    rng = np.random.default_rng(1)
    for round_ in ("first", "second"):
        for i, (rows, width) in enumerate(shapes(n_shapes, budget=budget), start=1):
            ids = rng.integers(1000, 20_000, (rows, width)).astype(np.int64)
            encoder.pooled(ids, np.ones_like(ids), "mean")
            if i % every == 0:
                rss[f"{round_}_{i}"] = rss_mb(pid)
    return {"rss_mb": {k: round(v, 1) for k, v in rss.items()}}


def _capped(capacity: int | None) -> None:
    """OpenVINO's CPU runtime cache capped at `capacity` entries in this process (None: the plugin's default)."""
    from worker.backends import openvino_bert

    if capacity is None:
        return
    plain = openvino_bert.compile_config

    def capped(precision: str, threads: int) -> dict[str, Any]:
        return {**plain(precision, threads), "CPU_RUNTIME_CACHE_CAPACITY": capacity}

    openvino_bert.compile_config = capped  # type: ignore[assignment]


def stream_arm(n_batches: int, capacity: int | None, grid: str, seed: int) -> dict[str, Any]:
    """In this process, caches cold: the worker's Embedder over `n_batches` batches of 1-32 corpus texts, as
    traffic brings them (a new shape costs its kernels' creation; grid-cost warms every shape first, so it
    leaves that out). Time per quarter of the stream and RSS after each."""
    import random
    import time

    from bench.collection_corpus import texts as corpus_texts
    from shared.config import load_config, parse_shape_grid
    from worker.backends.openvino_bert import OpenVinoBertEncoder
    from worker.embedder import Embedder
    from worker.loader import locate
    from worker.tokenize import TextTokenizer

    _capped(capacity)
    cfg = load_config(None, {}, [])
    source = locate(cfg.embedding)
    tokenizer = TextTokenizer.from_folder(source.path, source.max_tokens)
    model = Embedder(source, tokenizer, OpenVinoBertEncoder(source, "auto", 0, None, (), parse_shape_grid(grid)), 32)
    pool = corpus_texts(20_000, kind="mixed")
    rng = random.Random(seed)
    batches = [rng.sample(pool, rng.randint(1, 32)) for _ in range(n_batches)]
    pid, quarter = os.getpid(), max(1, n_batches // 4)
    seconds, rss = [], {"built": round(rss_mb(pid), 1)}
    for q in range(4):
        start = time.perf_counter()
        for batch in batches[q * quarter : (q + 1) * quarter]:
            model.embed(batch)
        seconds.append(round(time.perf_counter() - start, 2))
        rss[f"q{q + 1}"] = round(rss_mb(pid), 1)
    return {"seconds_by_quarter": seconds, "rss_mb": rss}


def stream(args: argparse.Namespace) -> dict[str, Any]:
    """Each arm in a fresh process, taking turns over `--rounds` rounds (a new stream seed each round)."""
    out: dict[str, Any] = {"batches": args.batches, "rounds": []}
    names = args.arms.split(",")
    for r in range(args.rounds):
        this: dict[str, Any] = {}
        for name in names if r % 2 == 0 else names[::-1]:
            env, capacity, grid = ARMS[name]
            cmd = [sys.executable, "-m", "bench.memory", "_stream_arm", "--batches", str(args.batches)]
            cmd += ["--capacity", str(capacity or 0), "--grid", grid, "--seed", str(r)]
            done = subprocess.run(cmd, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                                  text=True, cwd=ROOT, check=True)  # fmt: skip
            this[name] = json.loads(done.stdout.strip().splitlines()[-1])
            print(r, name, this[name], file=sys.stderr, flush=True)
        out["rounds"].append(this)
    base = names[0]
    out["total_seconds_over_" + base] = {
        n: round(float(np.median([sum(r[n]["seconds_by_quarter"]) / sum(r[base]["seconds_by_quarter"])
                                   for r in out["rounds"]])), 3)
        for n in names
    }  # fmt: skip
    out["load_avg"] = os.getloadavg()
    return out


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Each arm in a fresh process, in turn; their RSS curves."""
    out: dict[str, Any] = {"shapes": args.shapes, "budget": args.budget}
    for name in args.arms.split(","):
        env, capacity, grid = ARMS[name]
        cmd = [sys.executable, "-m", "bench.memory", "_worker_arm", "--shapes", str(args.shapes)]
        cmd += ["--capacity", str(capacity or 0), "--every", str(args.every), "--budget", str(args.budget)]
        cmd += ["--grid", grid]
        done = subprocess.run(cmd, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                              text=True, cwd=ROOT, check=True)  # fmt: skip
        out[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, out[name], file=sys.stderr, flush=True)
    return out


def load(url: str, seconds: float, rate: float, seed: int) -> None:
    """The soak's mix (bench/soak.py) at `rate` a second for `seconds`, open loop, against `url`."""
    import asyncio
    import random

    import aiohttp

    from bench.collection_corpus import texts as corpus_texts
    from bench.soak import MIX, Workload

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            work = Workload(url, session, corpus_texts(60_000)[seed * 5000 :], seed)
            work._next_id = seed * 1_000_000  # ids of their own each round
            rng, tasks = random.Random(seed), []
            ops, weights = list(MIX), list(MIX.values())
            loop = asyncio.get_running_loop()
            start, at = loop.time(), 0.0
            while at < seconds:
                at += rng.expovariate(rate)
                await asyncio.sleep(max(0.0, start + at - loop.time()))
                tasks.append(asyncio.create_task(work.one(rng.choices(ops, weights)[0])))
            await asyncio.gather(*tasks)
            bad = [c.status for c in work.calls if c.status not in (200, 201)]
            print(json.dumps({"calls": len(work.calls), "not_ok": len(bad)}))

    asyncio.run(run())


def gateway(args: argparse.Namespace) -> dict[str, Any]:
    """The gateway in this process under tracemalloc, one real worker, load from a child process by rounds."""
    import asyncio
    import tempfile
    import tracemalloc

    from aiohttp import web

    from bench.procs import free_port
    from gateway.app import create_app
    from shared.config import load_config

    tracemalloc.start(args.frames)
    data = tempfile.mkdtemp(prefix="akidb-memory-")
    port, zmq = free_port(), f"tcp://127.0.0.1:{free_port()}"
    sets = [f"storage.data_dir={data}", f"zmq.bind={zmq}", f"zmq.keys_dir={data}/keys", "server.grpc_enabled=false"]
    cfg = load_config(str(ROOT / "deploy" / "akidb.yaml"), {}, sets)
    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"rounds": []}

    async def serve() -> None:
        runner = web.AppRunner(create_app(cfg), handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        worker = subprocess.Popen(  # noqa: ASYNC220 (started once, before any load)
            [sys.executable, "-m", "worker", "--config", str(ROOT / "deploy" / "akidb.yaml"), "--gateway", zmq,
             "--set", f"zmq.keys_dir={data}/keys"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await _rounds(url, args, worker.pid, out)
        finally:
            worker.terminate()
            worker.wait()
            await runner.cleanup()

    asyncio.run(serve())
    return out


async def _rounds(url: str, args: argparse.Namespace, worker_pid: int, out: dict[str, Any]) -> None:
    import asyncio
    import gc
    import tracemalloc

    import aiohttp

    from bench.soak import COLLECTION, Ledger, preload
    from bench.soak_faults import ready

    while not await asyncio.to_thread(ready, url, False):  # noqa: ASYNC110 (another process's state)
        await asyncio.sleep(0.5)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/collections", json={"name": COLLECTION}) as resp:
            assert resp.status == 201
        from bench.collection_corpus import texts as corpus_texts

        await preload(url, session, corpus_texts(args.docs), Ledger(), 0)
    snaps = []
    for i in range(args.rounds):
        cmd = [sys.executable, "-m", "bench.memory", "_load", "--url", url, "--seconds", str(args.seconds)]
        child = await asyncio.create_subprocess_exec(*cmd, "--seed", str(i), cwd=ROOT, stdout=subprocess.PIPE,
                                                     env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        stdout, _ = await child.communicate()
        gc.collect()
        snaps.append(tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]))
        current, _ = tracemalloc.get_traced_memory()
        row = {"round": i, "load": json.loads(stdout.decode().strip().splitlines()[-1]),
               "gateway_rss_mb": round(rss_mb(os.getpid()), 1), "traced_mb": round(current / 2**20, 1),
               "worker_rss_mb": round(rss_mb(worker_pid), 1)}  # fmt: skip
        out["rounds"].append(row)
        print(row, file=sys.stderr, flush=True)
    grown = snaps[-1].compare_to(snaps[1], "lineno")
    out["grown_since_round_1"] = [
        {"where": str(s.traceback[0]), "kib": round(s.size_diff / 1024, 1), "blocks": s.count_diff}
        for s in sorted(grown, key=lambda s: -s.size_diff)[:15]
    ]
    out["largest_now"] = [
        {"where": str(s.traceback[0]), "kib": round(s.size / 1024, 1)} for s in snaps[-1].statistics("lineno")[:15]
    ]


def grid_cost(args: argparse.Namespace) -> dict[str, Any]:
    """What padding to the grid costs in time: the worker's Embedder with and without it, taking turns on the
    same batches (1-32 texts from the corpus, mixed lengths), in one process; ms per batch by round."""
    import random

    from bench.collection_corpus import texts as corpus_texts
    from bench.shapes import interleaved
    from shared.config import load_config, parse_shape_grid
    from worker.backends.openvino_bert import OpenVinoBertEncoder
    from worker.embedder import Embedder
    from worker.loader import locate
    from worker.tokenize import TextTokenizer

    cfg = load_config(None, {}, [])
    source = locate(cfg.embedding)
    tokenizer = TextTokenizer.from_folder(source.path, source.max_tokens)
    grids = [g for g in args.grids.split(",") if g]
    models = {
        f"grid_{g}": Embedder(
            source, tokenizer, OpenVinoBertEncoder(source, "auto", 0, None, (), parse_shape_grid(g)), 32
        )
        for g in [*grids, "1x1"]
    }
    pool = corpus_texts(20_000, kind="mixed")
    rng = random.Random(0)
    batches = [rng.sample(pool, rng.randint(1, 32)) for _ in range(args.batches)]
    for model in models.values():  # every shape once first: the comparison is of warm caches
        for batch in batches:
            model.embed(batch)
    rounds = []
    for _ in range(args.rounds):
        times = interleaved({n: (lambda b, m=m: m.embed(b)) for n, m in models.items()}, batches, 0.0)
        rounds.append({n: round(float(np.median(t)), 2) for n, t in times.items()})
        print(rounds[-1], file=sys.stderr, flush=True)
    over = {}
    for g in grids:
        ratio = [r[f"grid_{g}"] / r["grid_1x1"] for r in rounds]
        over[g] = {
            "median": round(float(np.median(ratio)), 3),
            "min": round(min(ratio), 3),
            "max": round(max(ratio), 3),
        }
    return {"batches": args.batches, "median_ms_per_batch_by_round": rounds, "over_no_grid": over,
            "load_avg": os.getloadavg()}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--shapes", type=int, default=400)
    w.add_argument("--every", type=int, default=50)
    w.add_argument("--arms", default=",".join(ARMS), help=f"which of {', '.join(ARMS)}")
    w.add_argument("--budget", type=int, default=0, help="padded tokens a pass at most (4096: the worker's); 0: any")
    g = sub.add_parser("gateway")
    g.add_argument("--rounds", type=int, default=6)
    g.add_argument("--seconds", type=float, default=60, help="load per round")
    g.add_argument("--rate", type=float, default=15)
    g.add_argument("--docs", type=int, default=20_000, help="documents loaded first")
    g.add_argument("--frames", type=int, default=1, help="tracemalloc frames per allocation")
    gc_ = sub.add_parser("grid-cost")
    gc_.add_argument("--batches", type=int, default=120)
    gc_.add_argument("--rounds", type=int, default=5)
    gc_.add_argument("--grids", default="4x16,2x16,1x16,4x8", help="grids to compare with none (1x1)")
    st = sub.add_parser("stream")
    st.add_argument("--batches", type=int, default=800)
    st.add_argument("--rounds", type=int, default=2)
    st.add_argument(
        "--arms",
        default="no_grid,grid_2x8,grid_4x16,onednn_cache_16",
        help=f"which of {', '.join(ARMS)}; the first is the base",
    )
    sa = sub.add_parser("_stream_arm")
    sa.add_argument("--batches", type=int, required=True)
    sa.add_argument("--capacity", type=int, default=0)
    sa.add_argument("--grid", default="1x1")
    sa.add_argument("--seed", type=int, default=0)
    lo = sub.add_parser("_load")
    lo.add_argument("--url", required=True)
    lo.add_argument("--seconds", type=float, required=True)
    lo.add_argument("--rate", type=float, default=15)
    lo.add_argument("--seed", type=int, default=0)
    arm = sub.add_parser("_worker_arm")
    arm.add_argument("--shapes", type=int, required=True)
    arm.add_argument("--capacity", type=int, default=0)
    arm.add_argument("--every", type=int, default=50)
    arm.add_argument("--budget", type=int, default=0)
    arm.add_argument("--grid", default="1x1")
    args = p.parse_args(argv)
    if args.what == "_worker_arm":
        print(json.dumps(worker_arm(args.shapes, args.capacity or None, args.every, args.budget, args.grid)))
        return
    if args.what == "_stream_arm":
        print(json.dumps(stream_arm(args.batches, args.capacity or None, args.grid, args.seed)))
        return
    if args.what == "_load":
        load(args.url, args.seconds, args.rate, args.seed)
        return
    report = {"worker": worker, "gateway": gateway, "grid-cost": grid_cost, "stream": stream}[args.what](args)
    from bench.soak import cpu_model

    report["cpu"] = cpu_model()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
