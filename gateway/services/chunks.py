"""One request's texts through the dispatcher in chunks of max_batch_size: submit, gather, time out, free."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.dispatch.batcher import ChunkResult, Pending
from gateway.errors import Timeout
from gateway.transport.interface import Transport

# Builds one chunk's queue entry: (its texts, the request's deadline, now, the future it resolves).
MakePending = Callable[[tuple[str, ...], float, float, "asyncio.Future[ChunkResult]"], Pending]


async def run_chunks(
    transport: Transport, size: int, texts: tuple[str, ...], make: MakePending, timeout_s: float,
    limit_from_caller: bool,
) -> list[ChunkResult]:  # fmt: skip
    """Queue `texts` in chunks of `size` (embedding texts or a rerank request's documents); their results in order.

    Raises `Timeout` past `timeout_s`, or the first chunk's failure (a full queue, a worker's error)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    futures: list[asyncio.Future[ChunkResult]] = []
    try:
        for start in range(0, len(texts), size):
            future: asyncio.Future[ChunkResult] = loop.create_future()
            transport.submit(make(texts[start : start + size], deadline, loop.time(), future))
            futures.append(future)
            if future.done():
                break  # refused (a full queue): the rest would only be refused or wasted
        gathered = asyncio.gather(*futures)
        # If we leave early (timeout, client gone) the gather ends with the children's
        # cancellation; consume that so asyncio does not report it as never retrieved.
        gathered.add_done_callback(_consume)
        try:
            return await asyncio.wait_for(gathered, timeout=deadline - loop.time())
        except TimeoutError:
            limit = "the caller's deadline" if limit_from_caller else "server.request_timeout_s"
            raise Timeout(
                f"no worker finished within {timeout_s:g}s ({limit}); the workers may be overloaded or gone"
            ) from None
    finally:
        for f in futures:  # a caller that left (timeout, disconnect, error) frees its queue slots
            f.cancel()


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
