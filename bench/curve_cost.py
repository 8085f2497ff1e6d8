"""What CURVE costs the embedding path, and where it goes: one run, CURVE on and off alternating.

    python -m bench.curve_cost [--rounds 4] [--seconds 15] [--skip-link] [--skip-stack]

`link`: the worker link alone, in one process (a ROUTER and a DEALER on loopback TCP, the real
codec): a JOB of 32 short texts out, a RESULT of 32 float32 rows back. It reports the handshake's
wall time and the CPU time per round trip (`time.process_time`: both ends and libzmq's IO threads)
for rows of 8, 384, 1024 and 4096 floats, so the cost splits into a fixed part per message and a part
per byte of result (encryption and the copies CURVE adds); CPU time is what a loaded machine cannot
blur the way it blurs wall time. A memcpy of one 384-d result frame is timed beside it for scale.

`stack`: gateway + one OpenVINO worker × 2 threads (`bench.procs.Stack`, the embedding cache off;
`--instant`: `bench.instant_worker` instead, so the path's own cost shows without a model's noise),
32-text requests from 4 callers back to back for `--seconds`, CURVE on then off (`zmq.allow_insecure`)
in alternating rounds. Per arm and round: texts/s, and the CPU milliseconds the gateway and the
worker spent per 32-text request (from /proc: every thread, libzmq's included). Reported as medians
with their min–max; the cost is (off − on) / off of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from bench import corpus
from bench.backends import machine
from bench.procs import Stack, free_port
from bench.server import throughput
from shared.codec import decode, encode
from shared.protocol import Job, Result

RESULTS = Path(__file__).parent / "results"
TEXTS = tuple(f"a short text, number {i}, about nothing much" for i in range(32))
TICK = os.sysconf("SC_CLK_TCK")


# ---- the link alone


def link_round_trips(curve: bool, dim: int, n: int) -> tuple[float, float]:
    """(CPU µs per JOB → RESULT round trip, handshake wall ms) for one fresh ROUTER/DEALER pair."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    if curve:
        router.curve_server = True
        router.curve_secretkey, router.curve_publickey = server_secret, server_public
    port = router.bind_to_random_port("tcp://127.0.0.1")
    rows = np.random.default_rng(0).standard_normal((32, dim)).astype(np.float32)

    def worker() -> None:
        dealer = ctx.socket(zmq.DEALER)
        if curve:
            dealer.curve_secretkey, dealer.curve_publickey = client_secret, client_public
            dealer.curve_serverkey = server_public
        dealer.connect(f"tcp://127.0.0.1:{port}")
        dealer.send(b"hello")
        while (frames := dealer.recv_multipart(copy=False))[0].bytes != b"stop":
            job = decode(frames)
            dealer.send_multipart(encode(Result(job.job_id, rows, (3,) * 32, (3,) * 32, 0.0)), copy=False)
        dealer.close(linger=0)

    started = time.perf_counter()
    thread = threading.Thread(target=worker)
    thread.start()
    identity, _ = router.recv_multipart()
    handshake_ms = (time.perf_counter() - started) * 1000

    def round_trip(job_id: int) -> None:
        router.send_multipart([identity, *encode(Job(job_id, "m", TEXTS, "mean", True, 1000, ""))], copy=False)
        decode(router.recv_multipart(copy=False)[1:])

    for i in range(100):  # warm
        round_trip(i)
    cpu = time.process_time()
    for i in range(n):
        round_trip(i)
    per_trip_us = (time.process_time() - cpu) / n * 1e6
    router.send_multipart([identity, b"stop"])
    thread.join()
    router.close(linger=0)
    ctx.term()
    return per_trip_us, handshake_ms


def link(rounds: int, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dim in (8, 384, 1024, 4096):
        trips: dict[bool, list[float]] = {False: [], True: []}
        shakes: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for curve in (False, True):
                us, ms = link_round_trips(curve, dim, n)
                trips[curve].append(us)
                shakes[curve].append(ms)
        out[str(dim)] = {
            "result_bytes": 32 * dim * 4,
            "cpu_us_per_round_trip": {arm: _summary(trips[c]) for arm, c in (("off", False), ("on", True))},
            "curve_cpu_us": round(statistics.median(trips[True]) - statistics.median(trips[False]), 1),
            "handshake_ms": {arm: _summary(shakes[c]) for arm, c in (("off", False), ("on", True))},
        }
    frame = np.ones((32, 384), np.float32)
    copies = [_timed(lambda: frame.copy()) for _ in range(2000)]
    out["memcpy_us_384d_frame"] = round(statistics.median(copies) * 1e6, 2)
    return out


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ---- the whole stack


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads."""
    return _ticks(Path(f"/proc/{pid}/stat")) / TICK


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds of a process's live threads, summed by name without digits ("ZMQbg/IO/", "python")."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "".join(c for c in (task / "comm").read_text().strip() if not c.isdigit())
            out[name] = out.get(name, 0.0) + _ticks(task / "stat") / TICK
        except OSError:
            continue  # the thread ended meanwhile
    return out


def _ticks(stat: Path) -> int:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


async def stack_arm(curve: bool, texts: list[str], seconds: float, cache: Path, instant: bool) -> dict[str, Any]:
    args = ("--backend", "openvino", "--threads", "2", "--set", f"embedding.cache_dir={cache}")
    st = Stack(0 if instant else 1, worker_args=args, http_port=free_port(), zmq_port=free_port(), curve=curve)
    stand_in = start_instant(st) if instant else None
    try:
        with st:
            return await _measure(st, stand_in.pid if stand_in else st.pids[1], texts, seconds)
    finally:
        if stand_in is not None:
            stand_in.terminate()
            stand_in.wait()


def start_instant(st: Stack) -> subprocess.Popen[bytes]:
    """`bench.instant_worker` for this stack; it dials first, and ZeroMQ connects it once the gateway binds."""
    command = [sys.executable, "-m", "bench.instant_worker", "--gateway", st.zmq, *st.security_args]
    return subprocess.Popen(command, env=st.env)


async def _measure(st: Stack, worker: int, texts: list[str], seconds: float) -> dict[str, Any]:
    """Texts/s, and CPU ms per request of the gateway and the worker (in all and by thread name)."""
    await throughput(st.url, texts, 4, 3.0)  # warm: shapes compiled, connections up
    gateway = st.pids[0]
    before = (cpu_s(gateway), cpu_s(worker))
    threads_before = {"gateway": cpu_by_thread(gateway), "worker": cpu_by_thread(worker)}
    per_s = await throughput(st.url, texts, 4, seconds)
    after = (cpu_s(gateway), cpu_s(worker))
    threads_after = {"gateway": cpu_by_thread(gateway), "worker": cpu_by_thread(worker)}
    requests = per_s * seconds / 32  # approximate: the measured phase runs a little past `seconds`
    out: dict[str, Any] = {
        "texts_per_s": per_s,
        "gateway_cpu_ms_per_request": round((after[0] - before[0]) / requests * 1000, 3),
        "worker_cpu_ms_per_request": round((after[1] - before[1]) / requests * 1000, 3),
    }
    for proc, now in threads_after.items():  # where each process's CPU went, by thread name
        then = threads_before[proc]
        out[f"{proc}_threads_ms_per_request"] = {
            name: round((sec - then.get(name, 0.0)) / requests * 1000, 3) for name, sec in sorted(now.items())
        }
    return out


async def stack(rounds: int, seconds: float, instant: bool) -> dict[str, Any]:
    texts = corpus.load("short", 2000)
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="akidb-bench-") as tmp:
        for r in range(rounds):
            # Alternate which arm goes first, so a drift of the machine's load favours neither.
            for arm in ("on", "off") if r % 2 == 0 else ("off", "on"):
                runs[arm].append(await stack_arm(arm == "on", texts, seconds, Path(tmp) / "cache", instant))
                print(f"round {r + 1} CURVE {arm}: {runs[arm][-1]}", flush=True)
    out: dict[str, Any] = {"rounds": runs}
    for key in ("texts_per_s", "gateway_cpu_ms_per_request", "worker_cpu_ms_per_request"):
        out[key] = {arm: _summary([run[key] for run in runs[arm]]) for arm in runs}
    on, off = out["texts_per_s"]["on"]["median"], out["texts_per_s"]["off"]["median"]
    out["throughput_cost_pct"] = round((off - on) / off * 100, 2)
    out["paired_cost_pct"] = [
        round((b["texts_per_s"] - a["texts_per_s"]) / b["texts_per_s"] * 100, 2)
        for a, b in zip(runs["on"], runs["off"], strict=True)
    ]
    return out


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=4, help="alternations of CURVE on/off (each arm once per round)")
    p.add_argument("--seconds", type=float, default=15.0, help="each stack arm's measured phase")
    p.add_argument("--trips", type=int, default=2000, help="round trips per link measurement")
    p.add_argument("--skip-link", action="store_true")
    p.add_argument("--skip-stack", action="store_true")
    p.add_argument(
        "--instant", action="store_true", help="the stack with bench.instant_worker: the path's own cost, no model"
    )
    args = p.parse_args()
    results: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if not args.skip_link:
        results["link"] = link(args.rounds * 2, args.trips)
        print(json.dumps(results["link"], indent=1), flush=True)
    if not args.skip_stack:
        corpus.ensure_lists()
        results["stack"] = asyncio.run(stack(args.rounds, args.seconds, args.instant))
        results["stack"]["worker"] = "bench.instant_worker" if args.instant else "OpenVINO × 2 threads"
    results["load_avg_at_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"curve-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "link"}, indent=1))
    print(f"\nfull results: {path}")


if __name__ == "__main__":
    main()
