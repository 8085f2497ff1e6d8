"""Open-loop load: requests leave on a fixed schedule whether or not earlier ones have answered.

Latency is measured from each request's scheduled start, so a stalled server cannot hide
its queueing delay by slowing the client down (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LoadResult:
    rate: float
    duration_s: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([float("nan")])
        return {
            "rate_rps": self.rate,
            "sent": len(self.latencies_ms) + sum(self.errors.values()),
            "ok": len(self.latencies_ms),
            "errors": dict(self.errors),
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p95_ms": round(float(np.percentile(lat, 95)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(lat.max()), 2),
            "achieved_rps": round(len(self.latencies_ms) / self.wall_s, 1) if self.wall_s else 0.0,
        }


async def open_loop(
    call: Callable[[int], Awaitable[None]], rate: float, duration_s: float, timeout_s: float = 30.0
) -> LoadResult:
    """Fire `call(i)` at `rate` per second for `duration_s`; an exception counts as an error by type."""
    result = LoadResult(rate, duration_s)
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = int(rate * duration_s)
    tasks = []

    async def one(i: int, scheduled: float) -> None:
        try:
            await asyncio.wait_for(call(i), timeout_s)
        except Exception as exc:  # every failure is data here
            key = type(exc).__name__ + (f":{exc}" if isinstance(exc, AssertionError) else "")
            result.errors[key] = result.errors.get(key, 0) + 1
            return
        result.latencies_ms.append((loop.time() - scheduled) * 1000)

    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    result.wall_s = loop.time() - start
    return result


async def closed_loop(call: Callable[[int], Awaitable[None]], concurrency: int, duration_s: float) -> tuple[int, float]:
    """Peak throughput: `concurrency` callers back to back. Returns (calls completed, seconds)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s
    done = 0
    counter = iter(range(10**9))

    async def caller() -> None:
        nonlocal done
        while loop.time() < end:
            await call(next(counter))
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done, time.perf_counter() - start
