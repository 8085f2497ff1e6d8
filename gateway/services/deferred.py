"""Start-up writes a full disk refused, kept and run once space returns, with no restart.

A restart is when a full disk is found, so start-up must not need room: opening collections and
replaying their rows only reads. What start-up would write (a collection's missing full-text index,
a re-embedding job taken up again) is tried once; if the disk has no room it waits here, the gateway
serves reads, searches and `/embed` meanwhile, and one task retries it when the disk has more room
than at the last refusal (or every RETRY_EVERY_S in any case: space may return on another mount).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from gateway.storage.datadir import free_bytes, is_disk_full
from gateway.storage.errors import CollectionNotFound, StorageFull
from gateway.storage.metrics import StorageMetrics

log = structlog.get_logger("gateway.storage")

Write = Callable[[], Awaitable[object]]
POLL_S = 1.0  # how often free space is read while work waits (one statvfs)
RETRY_EVERY_S = 30.0  # the longest a waiting write goes untried, whatever the free space says


def refused_for_space(exc: BaseException) -> bool:
    """Whether an error means the disk had no room (`StorageFull`, or SQLite's or the OS's own)."""
    return isinstance(exc, StorageFull) or is_disk_full(exc)


@dataclass
class RetryPolicy:
    """When to try waiting writes again: free space grew since the last refusal, or RETRY_EVERY_S passed.

    Plain values in, a decision out: a full-text build that fails after indexing half a collection is
    not repeated every second against a disk that is still full.
    """

    retry_every_s: float = RETRY_EVERY_S
    free_at_refusal: int | None = None
    refused_at: float = field(default=float("-inf"))

    def refused(self, free: int | None, now: float) -> None:
        self.free_at_refusal, self.refused_at = free, now

    def due(self, free: int | None, now: float) -> bool:
        if now - self.refused_at >= self.retry_every_s:
            return True
        return free is not None and (self.free_at_refusal is None or free > self.free_at_refusal)


class DeferredWrites:
    """Named writes waiting for disk space; one task (`run`) owns their retries."""

    def __init__(
        self, data_dir: Path, has_room: Callable[[], bool], metrics: StorageMetrics, poll_s: float = POLL_S
    ) -> None:
        self.data_dir = data_dir
        self.has_room = has_room  # blocking (a probe write): run on a thread
        self.metrics = metrics
        self.poll_s = poll_s
        self.policy = RetryPolicy()
        self._waiting: dict[str, Write] = {}
        self._task: asyncio.Task[None] | None = None

    def names(self) -> list[str]:
        """What waits for space, in the order it was refused."""
        return list(self._waiting)

    async def attempt(self, name: str, write: Write) -> bool:
        """Run `write` now; if the disk has no room, keep it for later and return False. Other errors raise."""
        try:
            await write()
        except Exception as exc:
            if not refused_for_space(exc):
                raise
            self.wait_for_space(name, write, str(exc))
            return False
        return True

    def wait_for_space(self, name: str, write: Write, error: str = "no space left on the disk") -> None:
        """Keep `write`, which the disk just refused, to run once space returns."""
        free = free_bytes(self.data_dir)
        self._waiting[name] = write
        self.policy.refused(free, time.monotonic())
        self.metrics.deferred.set(len(self._waiting))
        self.metrics.set_writable(False)
        log.warning("startup_write_deferred", work=name, data_dir=str(self.data_dir), free_bytes=free, error=error)

    async def check(self) -> bool:
        """Whether the disk has room now; if not, writes are shown refused until it has (start-up's check)."""
        if await asyncio.to_thread(self.has_room):
            return True
        free = free_bytes(self.data_dir)
        self.policy.refused(free, time.monotonic())
        self.metrics.set_writable(False)
        log.warning("storage_full_at_start", data_dir=str(self.data_dir), free_bytes=free)
        return False

    def start(self) -> None:
        """Start the retry task (on the running loop)."""
        self._task = asyncio.create_task(self.run(), name="deferred-writes")

    async def close(self) -> None:
        """Stop retrying; what still waits is tried again at the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        """Retry waiting writes whenever the policy says so, until cancelled.

        A refused request write also shows writes refused (`set_writable(False)`): the same check then
        shows them stored again once space returns, without waiting for a client's write to succeed.
        """
        while True:
            await asyncio.sleep(self.poll_s)
            waiting = self._waiting or not self.metrics.is_writable
            if waiting and self.policy.due(free_bytes(self.data_dir), time.monotonic()):
                await self.retry()

    async def retry(self) -> None:
        """If the disk has room, try each waiting write in order; stop at the first the disk still refuses."""
        if not await asyncio.to_thread(self.has_room):
            self.policy.refused(free_bytes(self.data_dir), time.monotonic())
            return
        for name, write in list(self._waiting.items()):
            try:
                await write()
            except CollectionNotFound:  # deleted meanwhile: nothing left to write for it
                log.info("deferred_work_dropped", work=name, reason="collection deleted")
            except Exception as exc:
                if refused_for_space(exc):
                    self.policy.refused(free_bytes(self.data_dir), time.monotonic())
                    return
                log.exception("deferred_work_failed", work=name)
            else:
                log.info("deferred_work_done", work=name)
            del self._waiting[name]
            self.metrics.deferred.set(len(self._waiting))
        self.metrics.set_writable(True)
