"""/embed before and after a change, in one sitting: two checkouts' stacks in alternating rounds.

    git worktree add /tmp/before <commit>
    python -m bench.commits --before /tmp/before [--rounds 4] [--seconds 10]

Each round starts one stack per checkout (gateway + one OpenVINO worker × 2 threads, each from its own
folder with its own defaults, CURVE included; the embedding cache off so every text reaches the
worker), in alternating order, and measures what the issue asks of `/embed`: texts/s with 32-text
requests (4 callers back to back) and p50/p95 with 1–2 short texts at 50 requests/s (open loop). The
report gives each arm's medians with their min–max and the after/before ratios of the medians; on a
shared machine only a difference outside both arms' spread means something.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import corpus
from bench.backends import machine
from bench.procs import ROOT, Stack, free_port
from bench.server import latency, throughput


async def arm(root: Path, cache: Path, seconds: float, short: list[str]) -> dict[str, float]:
    worker_args = ("--backend", "openvino", "--threads", "2", "--set", f"embedding.cache_dir={cache}")
    stack = Stack(
        worker_args=worker_args,
        gateway_args=("--set", "cache.max_bytes=0"),
        http_port=free_port(),
        zmq_port=free_port(),
        root=root,
    )
    with stack as st:
        texts_per_s = await throughput(st.url, short, 4, seconds)
        lat = await latency(st.url, short, 50, seconds)
    return {"texts_per_s": texts_per_s, "p50_ms": lat["p50_ms"], "p95_ms": lat["p95_ms"]}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}


async def run(before: Path, after: Path, rounds: int, seconds: float) -> dict[str, Any]:
    short = corpus.load("short", 2000)
    roots = {"before": before, "after": after}
    seen: dict[str, list[dict[str, float]]] = {name: [] for name in roots}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = list(roots) if r % 2 == 0 else list(reversed(roots))
            for name in order:
                seen[name].append(await arm(roots[name], Path(tmp) / name, seconds, short))
                print(json.dumps({"round": r, "arm": name, **seen[name][-1]}), flush=True)
    report: dict[str, Any] = {}
    for name, rows in seen.items():
        report[name] = {key: spread([row[key] for row in rows]) for key in rows[0]}
    report["after_over_before"] = {
        key: round(report["after"][key]["median"] / report["before"][key]["median"], 3) for key in report["after"]
    }
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, required=True, help="a checkout of the commit to compare against")
    p.add_argument("--after", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    print(json.dumps({"machine": machine(), "before": str(args.before), "after": str(args.after)}), flush=True)
    print(
        json.dumps(asyncio.run(run(args.before.resolve(), args.after.resolve(), args.rounds, args.seconds))), flush=True
    )


if __name__ == "__main__":
    main()
