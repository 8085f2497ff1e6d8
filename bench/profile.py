"""Where the time goes: py-spy on the gateway and the worker (each its own sampler) under open-loop load.

    python -m bench.profile --what embed1 --rate 50 --duration 20
    python -m bench.profile --what vector_search --docs 100000 --rate 100 --target gateway
    python -m bench.profile --what text_search --set cache.max_bytes=0 --set server.uvloop=false

--what  one of bench/query_loads.py's loads: embed1 (POST /embed, one new text each time), vector_search,
        text_search (a new text each time), text_search_zipf (repeating queries), on --docs random vectors.
Writes, per profiled process, a flame graph (bench/results/profile-<what>-<process>-<time>.svg) and the
collapsed stacks it was drawn from (.txt, for speedscope or flamegraph.pl), then prints the load's
latencies and the top --top functions by own time. py-spy needs ptrace rights: root, or
`sysctl kernel.yama.ptrace_scope=0`, or CAP_SYS_PTRACE in a container.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.flamegraph import read_collapsed, svg, top_frames
from bench.loadgen import open_loop
from bench.procs import ROOT, Stack
from bench.query_loads import LOADS, prepare

RESULTS = ROOT / "bench" / "results"


def py_spy() -> str:
    """The py-spy next to this Python (the bench extra installs it), else one on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    found = str(local) if local.exists() else shutil.which("py-spy")
    if not found:
        sys.exit('py-spy is not installed: pip install ".[bench]" (or pip install py-spy)')
    return found


def start_sampler(pid: int, out: Path, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    cmd = [py_spy(), "record", "--pid", str(pid), "--format", "raw", "--output", str(out),
           "--duration", str(int(args.duration)), "--rate", str(args.sample_rate)]  # fmt: skip
    # Non-blocking by default: a paused process shows every thread stopped, so py-spy cannot tell idle
    # threads (a pool thread waiting on its queue, the loop in epoll) and counts their waits as work.
    cmd += [flag for flag, on in (("--native", args.native), ("--idle", args.idle),
                                  ("--nonblocking", not args.blocking)) if on]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def load(url: str, args: argparse.Namespace) -> dict[str, Any]:
    work = await prepare(url, args.what, args.docs, int(args.rate * args.duration))
    async with aiohttp.ClientSession() as s:
        for i in range(20):  # warm-up, with texts the measured load does not send
            await work.warmup(s, i)
        samplers = {name: start_sampler(pid, out, args) for name, (pid, out) in args.targets.items()}
        await asyncio.sleep(0.3)  # py-spy attaches
        result = await open_loop(lambda i: work.request(s, i), args.rate, args.duration)
    for name, proc in samplers.items():
        output = proc.communicate(timeout=args.duration + 60)[0].decode(errors="replace")
        if proc.returncode != 0 or not args.targets[name][1].exists():
            sys.exit(f"py-spy failed on the {name} (exit {proc.returncode}); it needs ptrace rights:\n{output}")
    return result.summary()


def report(args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (_, raw) in args.targets.items():
        stacks = read_collapsed(raw.read_text())
        picture = raw.with_suffix(".svg")
        picture.write_text(svg(stacks, f"{name} under {args.what} at {args.rate:g}/s ({stamp})"))
        samples = sum(stacks.values())
        out[name] = {"samples": samples, "svg": str(picture.relative_to(ROOT)),
                     # samples in a non-idle thread per sampling tick: ~CPU cores busy, as a percentage
                     "busy_pct_of_a_core": round(100 * samples / (args.duration * args.sample_rate), 1),
                     "stacks": str(raw.relative_to(ROOT)), "top": top_frames(stacks, args.top)}  # fmt: skip
    return out


def print_top(profiles: dict[str, Any]) -> None:
    for name, p in profiles.items():
        print(f"\n{name}: {p['samples']} samples ({p['busy_pct_of_a_core']}% of a core) -> {p['svg']}", file=sys.stderr)
        print(f"{'own %':>6} {'total %':>8}  function", file=sys.stderr)
        for row in p["top"]:
            print(f"{row['own_pct']:>6} {row['total_pct']:>8}  {row['function']}", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--what", choices=LOADS, default="embed1")
    p.add_argument("--target", choices=("gateway", "worker", "both"), default="both")
    p.add_argument("--rate", type=float, default=50, help="requests per second (open loop)")
    p.add_argument("--duration", type=float, default=20, help="seconds of load, all of them sampled")
    p.add_argument("--docs", type=int, default=10_000, help="collection size for the search loads")
    p.add_argument("--top", type=int, default=25, help="functions to print, by own time")
    p.add_argument("--sample-rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--native", action="store_true", help="include C/C++ frames (numpy, OpenVINO, USearch)")
    p.add_argument("--idle", action="store_true", help="include idle threads (waiting in epoll, on a queue)")
    p.add_argument("--blocking", action="store_true", help="pause the process per sample (exact stacks, but "
                   "waits then count as work)")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="gateway config, e.g. "
                   "server.uvloop=false or cache.max_bytes=0")  # fmt: skip
    p.add_argument("--worker-set", action="append", default=[], metavar="KEY=VALUE", help="worker config")
    p.add_argument("--port", type=int, default=18280)
    p.add_argument("--root", type=Path, help="profile another checkout's gateway and worker (e.g. an older "
                   "commit's worktree; only flags every version takes)")  # fmt: skip
    args = p.parse_args()
    args.duration = max(1, int(args.duration))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with contextlib.ExitStack() as cleanup:
        data = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="akidb-profile-"))
        gw_args = ("--data-dir", data, "--set", "server.grpc_enabled=false", *[a for kv in args.set
                   for a in ("--set", kv)])  # fmt: skip
        w_args = tuple(a for kv in args.worker_set for a in ("--set", kv))
        with Stack(workers=1, worker_args=w_args, gateway_args=gw_args, http_port=args.port,
                   zmq_port=args.port + 1, root=args.root) as stack:  # fmt: skip
            pids = {"gateway": stack.procs[0].pid, "worker": stack.procs[1].pid}
            chosen = list(pids) if args.target == "both" else [args.target]
            args.targets = {n: (pids[n], RESULTS / f"profile-{args.what}-{n}-{stamp}.txt") for n in chosen}
            latency = asyncio.run(load(stack.url, args))
    profiles = report(args, stamp)
    print_top(profiles)
    summary = {"what": args.what, "root": str(args.root or ROOT), "rate": args.rate, "duration_s": args.duration,
               "set": args.set, "latency": latency, "profiles": profiles}  # fmt: skip
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
