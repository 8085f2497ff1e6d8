"""Start-up writes a full disk refused: when they are retried, in what order, and what the gauges say."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.metrics import LATENCY_BUCKETS
from gateway.services.deferred import DeferredWrites, RetryPolicy, refused_for_space
from gateway.storage.errors import CollectionNotFound, StorageFull
from gateway.storage.metrics import StorageMetrics


@pytest.mark.parametrize(
    ("free_at_refusal", "refused_at", "free", "now", "due"),
    [
        (1000, 0.0, 1000, 1.0, False),  # still as full
        (1000, 0.0, 999, 1.0, False),  # fuller
        (1000, 0.0, 1001, 1.0, True),  # some room came back
        (1000, 0.0, None, 1.0, False),  # free space unreadable: wait for the period
        (1000, 0.0, 1000, 30.0, True),  # the period passed: try whatever the figure says
        (None, 0.0, 5, 1.0, True),  # unknown at refusal, known now
    ],
)
def test_retry_policy_waits_for_more_room_or_the_period(
    free_at_refusal: int | None, refused_at: float, free: int | None, now: float, due: bool
) -> None:
    policy = RetryPolicy(retry_every_s=30.0)
    policy.refused(free_at_refusal, refused_at)
    assert policy.due(free, now) is due


def test_a_policy_never_refused_is_due() -> None:
    assert RetryPolicy().due(None, 0.0)


def test_what_counts_as_no_room() -> None:
    assert refused_for_space(StorageFull("full"))
    assert refused_for_space(OSError(errno.ENOSPC, "No space left on device"))
    assert refused_for_space(sqlite3.OperationalError("database or disk is full"))
    assert not refused_for_space(OSError(errno.EACCES, "Permission denied"))
    assert not refused_for_space(ValueError("no"))


class Disk:
    """A disk that is full until `free()`; each write logs its name when it runs."""

    def __init__(self) -> None:
        self.full = True
        self.done: list[str] = []

    def has_room(self) -> bool:
        return not self.full

    def write(self, name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            if self.full:
                raise StorageFull("no space")
            self.done.append(name)

        return run


@pytest.fixture
def metrics() -> StorageMetrics:
    return StorageMetrics(CollectorRegistry(), LATENCY_BUCKETS)


async def test_refused_writes_wait_and_run_in_order_once_the_disk_has_room(
    tmp_path: Path, metrics: StorageMetrics
) -> None:
    disk = Disk()
    deferred = DeferredWrites(tmp_path, disk.has_room, metrics)
    assert not await deferred.attempt("first", disk.write("first"))
    deferred.wait_for_space("second", disk.write("second"))
    assert deferred.names() == ["first", "second"]
    assert metrics.deferred._value.get() == 2
    assert metrics.writable._value.get() == 0 and not metrics.is_writable

    await deferred.retry()  # still full: nothing runs
    assert disk.done == [] and deferred.names() == ["first", "second"]

    disk.full = False
    await deferred.retry()
    assert disk.done == ["first", "second"]
    assert deferred.names() == []
    assert metrics.deferred._value.get() == 0
    assert metrics.writable._value.get() == 1 and metrics.is_writable


async def test_a_write_that_runs_at_once_is_not_kept(tmp_path: Path, metrics: StorageMetrics) -> None:
    disk = Disk()
    disk.full = False
    deferred = DeferredWrites(tmp_path, disk.has_room, metrics)
    assert await deferred.attempt("now", disk.write("now"))
    assert disk.done == ["now"] and deferred.names() == []
    assert metrics.is_writable


async def test_a_write_failing_for_another_reason_raises_at_start_and_is_dropped_later(
    tmp_path: Path, metrics: StorageMetrics
) -> None:
    disk = Disk()
    deferred = DeferredWrites(tmp_path, disk.has_room, metrics)

    async def broken() -> None:
        raise ValueError("a bug")

    async def gone() -> None:
        raise CollectionNotFound("deleted meanwhile")

    with pytest.raises(ValueError):
        await deferred.attempt("broken", broken)
    deferred.wait_for_space("broken", broken)
    deferred.wait_for_space("gone", gone)
    deferred.wait_for_space("after", disk.write("after"))
    disk.full = False
    await deferred.retry()
    assert disk.done == ["after"] and deferred.names() == []


async def test_a_write_the_disk_refuses_again_stops_the_round(tmp_path: Path, metrics: StorageMetrics) -> None:
    """The probe said there was room, the write found none: the rest wait for the next round."""
    disk = Disk()
    deferred = DeferredWrites(tmp_path, lambda: True, metrics)
    deferred.wait_for_space("first", disk.write("first"))
    deferred.wait_for_space("second", disk.write("second"))
    await deferred.retry()
    assert deferred.names() == ["first", "second"] and not metrics.is_writable


async def test_the_check_at_start_shows_a_full_disk(tmp_path: Path, metrics: StorageMetrics) -> None:
    disk = Disk()
    deferred = DeferredWrites(tmp_path, disk.has_room, metrics)
    assert not await deferred.check()
    assert not metrics.is_writable
    assert deferred.names() == []  # nothing waits: writes are refused, reads go on
    disk.full = False
    await deferred.retry()
    assert metrics.is_writable
