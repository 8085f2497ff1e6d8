"""Index snapshots off the write path: a slow or failing snapshot never holds up or fails a write.

Real SQLite and USearch on a real disk; no processes. The policy's backoff is a table with no sleeps.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from gateway.metrics import LATENCY_BUCKETS
from gateway.storage.collection import Collection, CollectionInfo
from gateway.storage.db import NewDocument
from gateway.storage.index import IndexParams, VectorIndex, snapshots
from gateway.storage.metrics import StorageMetrics
from gateway.storage.snapshot_policy import SnapshotPolicy

DIM = 8


def make(folder: Path, snapshot_every: int) -> Collection:
    info = CollectionInfo("col_s", "s", DIM, "cosine", "m", "mean", True, IndexParams(16, 64, 64, "f32"), time.time())
    folder.mkdir()
    Collection.initialise(folder, info)
    return Collection.open(folder, snapshot_every, StorageMetrics(CollectorRegistry(), LATENCY_BUCKETS))


def batch(n: int, start: int) -> list[NewDocument]:
    vectors = np.random.default_rng(start).standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [NewDocument(f"d{start + i}", None, None, vectors[i], False) for i in range(n)]


@pytest.mark.parametrize(
    ("changes", "now", "failures_before", "due"),
    [
        (9, 0.0, 0, False),  # below the threshold
        (10, 0.0, 0, True),
        (10, 0.5, 1, False),  # first failure at t=0: retry after 1 s
        (10, 1.0, 1, True),
        (10, 3.9, 3, False),  # third failure at t=0: retry after 4 s
        (10, 4.0, 3, True),
        (10, 299.0, 20, False),  # capped at 300 s
        (10, 300.0, 20, True),
    ],
)
def test_the_policy_waits_a_doubling_backoff_after_failures(
    changes: int, now: float, failures_before: int, due: bool
) -> None:
    policy = SnapshotPolicy(10)
    for _ in range(failures_before):
        policy.failed(0.0)
    assert policy.due(changes, now) is due
    policy.succeeded()
    assert policy.due(10, 0.0)


def test_the_insert_crossing_the_threshold_does_not_save_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    col = make(tmp_path / "c", snapshot_every=100)
    release = threading.Event()
    writer_threads: set[str] = set()
    original = VectorIndex.write_snapshot

    def slow_write(*args: object) -> object:
        writer_threads.add(threading.current_thread().name)
        release.wait(30)  # a disk that takes its time
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(VectorIndex, "write_snapshot", staticmethod(slow_write))
    started = time.perf_counter()
    col.writer.submit(col.upsert, batch(150, 0)).result(timeout=10)  # crosses snapshot_every
    col.writer.submit(col.upsert, batch(10, 150)).result(timeout=10)  # and the next one is not held either
    assert time.perf_counter() - started < 5, "an insert waited for the snapshot"
    assert snapshots(tmp_path / "c") == []  # the snapshot is still being written
    release.set()
    col.wait_for_snapshot()
    [snap] = snapshots(tmp_path / "c")
    assert snap.last_key in (150, 160)  # what was committed when the copy was taken
    assert writer_threads and all(name.startswith("akidb-snap-") for name in writer_threads)
    col.close(save=False)


def test_a_failing_snapshot_never_fails_a_write_and_is_counted_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    col = make(tmp_path / "c", snapshot_every=50)
    col.policy.first_retry_s = 0.0  # retry at the next write, so the test need not wait

    def no_room(*args: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VectorIndex, "write_snapshot", staticmethod(no_room))
    for b in range(6):
        col.writer.submit(col.upsert, batch(60, b * 60)).result(timeout=10)
        col.wait_for_snapshot()
    failures = col.metrics.snapshot_failures._value.get()
    assert failures >= 2, "a failed snapshot was not retried"
    assert len(col.index) == col.store.count() == 360
    assert list((tmp_path / "c").glob("index-*")) == []  # nothing half-written left behind
    monkeypatch.undo()
    col.writer.submit(col.upsert, batch(60, 360)).result(timeout=10)
    col.wait_for_snapshot()
    [snap] = snapshots(tmp_path / "c")
    assert snap.last_key == 420 and col.changes == 0 and col.policy.failures == 0
    col.writer.submit(col.close, False).result()
    reopened = Collection.open(tmp_path / "c", 50, StorageMetrics(CollectorRegistry(), LATENCY_BUCKETS))
    assert len(reopened.index) == 420 and reopened.changes == 0
    reopened.close(save=False)
