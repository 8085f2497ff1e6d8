"""Slow or hostile HTTP clients: heads and bodies that trickle in are cut off after their timeouts, other
clients stay served meanwhile, and a client that leaves mid-request has its queued texts skipped.

A real gateway process and a real worker; the slow clients are raw sockets sending a byte at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.faults.conftest import PATIENT
from tests.support.live import LiveClient, ready
from tests.support.processes import GatewayProcess, WorkerProcess

pytestmark = pytest.mark.slow
HEAD = b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"


def timeouts(header_s: float, body_s: float) -> tuple[str, ...]:
    return ("--set", f"server.header_timeout_s={header_s}", "--set", f"server.body_timeout_s={body_s}")


@contextlib.asynccontextmanager
async def gateway(endpoint: str, data_dir: Path, *args: str) -> AsyncIterator[tuple[GatewayProcess, LiveClient]]:
    # The embedding cache off: these tests time and count what reaches a worker, and they repeat texts.
    proc = GatewayProcess(endpoint, str(data_dir), *PATIENT, "--set", "cache.max_bytes=0", *args)
    try:
        async with ready(proc) as client:
            yield proc, client
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]


async def trickle(proc: GatewayProcess, prefix: bytes, then: bytes, every_s: float) -> tuple[float, bytes]:
    """Send `prefix` at once, then `then` a byte every `every_s`; (seconds until the server closed, what it said)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    started = time.monotonic()
    writer.write(prefix)
    answer = b""

    async def read_all() -> None:
        nonlocal answer
        while chunk := await reader.read(4096):
            answer += chunk

    reading = asyncio.create_task(read_all())
    try:
        for byte in then:
            if reading.done():
                break
            writer.write(bytes([byte]))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            await asyncio.wait([reading], timeout=every_s)
        await asyncio.wait_for(reading, timeout=60)
    finally:
        writer.close()
    return time.monotonic() - started, answer


async def test_heads_and_bodies_sent_a_byte_a_second_are_closed_after_their_timeouts(
    endpoint: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    async with gateway(endpoint, tmp_path, *timeouts(2, 2)) as (proc, client):
        head_s, said = await trickle(proc, b"", HEAD, every_s=1.0)
        assert 1.5 < head_s < 8, head_s
        assert said == b""  # no request was ever complete: the connection is just closed
        body_s, said = await trickle(proc, HEAD, b'{"texts": ["' + b"a" * 200, every_s=1.0)
        assert 1.5 < body_s < 8, body_s
        assert said.startswith(b"HTTP/1.1 408") and b"server.body_timeout_s" in said, said
        assert await client.metric("akidb_http_slow_bodies_closed_total") == 1
        await client.ok("POST", "/embed", {"texts": ["still served"]})
    assert "slow_body_closed" in proc.output()


async def p95_of_embed(client: LiveClient, n: int) -> float:
    took = []
    for i in range(n):
        started = time.perf_counter()
        await client.ok("POST", "/embed", {"texts": [f"a normal client, request {i}"]})
        took.append(time.perf_counter() - started)
    return statistics.quantiles(took, n=20)[-1]


async def test_fifty_slow_connections_leave_embed_latency_alone(
    endpoint: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    async with gateway(endpoint, tmp_path, *timeouts(60, 60)) as (proc, client):
        await p95_of_embed(client, 5)  # warm-up
        alone = await p95_of_embed(client, 40)
        slow = [asyncio.create_task(trickle(proc, b"", HEAD, every_s=0.5)) for _ in range(25)]
        slow += [asyncio.create_task(trickle(proc, HEAD, b"{" * 200, every_s=0.5)) for _ in range(25)]
        await asyncio.sleep(1.0)  # all 50 connected and trickling
        try:
            crowded = await p95_of_embed(client, 40)
            assert not any(t.done() for t in slow), "a slow connection was closed before its timeout"
        finally:
            for t in slow:
                t.cancel()
            await asyncio.gather(*slow, return_exceptions=True)
    print(f"\n/embed p95: {alone * 1000:.1f} ms alone, {crowded * 1000:.1f} ms with 50 slow connections open")
    assert crowded < max(4 * alone, alone + 0.25), (alone, crowded)


async def test_a_client_that_disconnects_has_its_queued_texts_skipped(
    endpoint: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    busy = [f"text {i}: " + "a sentence long enough to keep the worker busy for a while " * 6 for i in range(768)]
    model = "all-MiniLM-L6-v2"
    async with gateway(endpoint, tmp_path, "--set", "batching.max_batch_size=16") as (proc, client):
        before = await client.metric("akidb_embedding_abandoned_total") or 0.0
        hogging = asyncio.create_task(client.ok("POST", "/embed", {"texts": busy}))
        await asyncio.sleep(0.3)  # its jobs are queued ahead of the next request's
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as leaving:
            with pytest.raises(TimeoutError):
                await leaving.post(proc.url + "/embed", json={"texts": [f"left behind {i}" for i in range(64)]})
        assert not hogging.done(), "the worker finished too fast for the test to queue behind it"
        await hogging
        await asyncio.sleep(0.5)  # a broker tick or two
        assert await client.metric("akidb_embedding_texts_total", model=model) == len(busy)  # the 64 were skipped
        skipped = (await client.metric("akidb_embedding_abandoned_total") or 0.0) - before
    assert skipped == 64
