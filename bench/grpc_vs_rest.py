"""gRPC Embed next to REST /embed: p50/p95/p99 at a fixed open-loop rate, same stack, same run.

    .venv/bin/python -m bench.grpc_vs_rest --rate 50 --duration 20 --rounds 3

Starts `akidb-gateway` (gRPC on) and the worker(s) as child processes on free loopback ports,
then alternates REST and gRPC phases (`rounds` of each, so drift on a shared machine hits both
alike; `--together` runs both at once instead) with one short text per request. Prints one
JSON summary per transport and the p50 gap (goal: gRPC adds at most 1 ms). `--out FILE` also
writes it (bench/results/ is git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import grpc

from bench.loadgen import LoadResult, open_loop
from bench.procs import Stack, free_port
from shared.proto import embedding_pb2 as pb
from shared.proto import embedding_pb2_grpc as pb_grpc

TEXTS = [
    "The quick brown fox jumps over the lazy dog",
    "Vector databases index embeddings for similarity search",
    "gRPC and REST share one batcher in the gateway",
    "A short text, as a search query would be",
]


async def run(
    url: str, grpc_port: int, rate: float, duration: float, rounds: int, together: bool
) -> dict[str, LoadResult]:
    results = {t: LoadResult(rate, 0.0) for t in ("rest", "grpc")}
    async with aiohttp.ClientSession() as http, grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.EmbeddingServiceStub(channel)

        async def rest(i: int) -> None:
            async with http.post(url + "/embed", json={"texts": [TEXTS[i % len(TEXTS)]]}) as r:
                assert r.status == 200, r.status
                await r.read()

        async def rpc(i: int) -> None:
            resp = await stub.Embed(pb.EmbeddingRequest(texts=[TEXTS[i % len(TEXTS)]]))
            assert len(resp.embeddings) == 1

        for call in (rest, rpc):  # warm-up: connections, first batches
            await open_loop(call, rate, 2.0)
        for _ in range(rounds):
            if together:  # both at once, each at `rate`: the same machine noise hits both
                phases = await asyncio.gather(open_loop(rest, rate, duration), open_loop(rpc, rate, duration))
                _add(results["rest"], phases[0])
                _add(results["grpc"], phases[1])
            else:
                _add(results["rest"], await open_loop(rest, rate, duration))
                _add(results["grpc"], await open_loop(rpc, rate, duration))
    return results


def _add(total: LoadResult, phase: LoadResult) -> None:
    total.latencies_ms += phase.latencies_ms
    total.wall_s += phase.wall_s
    total.duration_s += phase.duration_s
    for key, n in phase.errors.items():
        total.errors[key] = total.errors.get(key, 0) + n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rate", type=float, default=50.0, help="requests per second (default 50)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per phase (default 20)")
    p.add_argument("--rounds", type=int, default=3, help="REST+gRPC phase pairs (default 3)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--instant", action="store_true", help="use bench/instant_worker.py: transports alone, no model")
    p.add_argument("--together", action="store_true", help="run REST and gRPC at once (each at --rate), not in turns")
    p.add_argument("--no-curve", action="store_true", help="run the worker link with zmq.allow_insecure (no CURVE)")
    p.add_argument("--out", type=Path, help="also write the JSON summary here")
    args = p.parse_args(argv)

    grpc_port = free_port()
    stack = Stack(
        workers=0 if args.instant else args.workers,
        http_port=free_port(),
        zmq_port=free_port(),
        gateway_args=("--set", f"server.grpc_port={grpc_port}", "--set", "server.grpc_enabled=true"),
        curve=not args.no_curve,
    )
    # The stand-in dials first; ZeroMQ connects it once the gateway binds, and the stack is ready.
    instant = (
        subprocess.Popen(
            [sys.executable, "-m", "bench.instant_worker", "--gateway", stack.zmq, *stack.security_args], env=stack.env
        )
        if args.instant
        else None
    )
    try:
        with stack:
            results = asyncio.run(run(stack.url, grpc_port, args.rate, args.duration, args.rounds, args.together))
    finally:
        if instant is not None:
            instant.terminate()
            instant.wait()
    summary = {name: r.summary() for name, r in results.items()}
    summary["grpc_minus_rest_p50_ms"] = round(summary["grpc"]["p50_ms"] - summary["rest"]["p50_ms"], 2)  # type: ignore[operator]
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
