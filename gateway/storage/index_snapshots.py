"""When a collection saves its index, and how: in the background on its own snapshot thread, when
`SnapshotPolicy` says one is due, so no write waits for the disk; removal records the saved index no longer
needs are forgotten, except while a collection snapshot (backup) copies the database."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator

import structlog

from gateway.storage.collection_base import CollectionBase
from gateway.storage.datadir import free_bytes
from gateway.storage.errors import StorageFull

log = structlog.get_logger("gateway.storage")


class IndexSnapshots(CollectionBase):
    """A collection's index snapshots: scheduled after writes, run on the snapshot thread, waited for at close."""

    def _maybe_snapshot(self) -> None:
        """Forget what the last snapshot made needless; start one when due and none runs (writer thread)."""
        self._forget_saved_removals()
        if self._saving is not None and not self._saving.done():
            return
        if self.policy.due(self.changes, time.monotonic()):
            self._saving = self.snapshotter.submit(self._snapshot_in_background)

    def _snapshot_in_background(self) -> None:
        try:
            last_removal = self._save()
        except Exception as exc:
            self._snapshot_failed(exc)
            return
        self.policy.succeeded()
        with self._applying:  # removal records go through the writer's connection: it forgets them
            self._forgettable = last_removal

    def _snapshot_failed(self, exc: Exception) -> None:
        retry_in = self.policy.failed(time.monotonic())
        self.metrics.snapshot_failures.inc()
        log.warning(
            "index_snapshot_failed",
            collection=self.info.name,
            error=f"{type(exc).__name__}: {exc}",
            consecutive_failures=self.policy.failures,
            retry_in_s=retry_in,
            unsaved_changes=self.changes,
            free_bytes=free_bytes(self.folder),
        )

    def snapshot(self) -> None:
        """Save the index as of the last commit, and forget removals it now reflects (writer thread)."""
        saved = self._save()
        with self._applying:
            self._forgettable = max(self._forgettable, saved)
        self._forget_saved_removals()

    def _save(self) -> int:
        """Write a snapshot of the index and the watermark it reflects; returns that last removal seq.

        The writer waits only while the index is copied to memory; the disk write runs without locks.
        """
        started = time.perf_counter()
        with self._applying:
            (last_key, last_removal), changes = self.marks, self.changes
            data = self.index.serialize()
        self.index.write_snapshot(self.folder, data, last_key, last_removal)
        with self._applying:
            self.changes -= changes
        self.metrics.snapshots.observe(time.perf_counter() - started)
        log.info(
            "index_snapshot_saved",
            collection=self.info.name,
            documents=len(self.index),
            seconds=round(time.perf_counter() - started, 3),
        )
        return last_removal

    @contextlib.contextmanager
    def backup_source(self) -> Iterator[tuple[bytes, int, int]]:
        """(index bytes, last key, last removal) as of the last commit, for a collection snapshot.

        While the block runs no removal record is forgotten, so a copy of the database made inside it
        holds every row and removal the index copy lacks: a restore replays them as a restart does.
        """
        with self._applying:
            (last_key, last_removal) = self.marks
            data = self.index.serialize()
            self._backups += 1
        try:
            yield data, last_key, last_removal
        finally:
            with self._applying:
                self._backups -= 1

    def _forget_saved_removals(self) -> None:
        with self._applying:
            if self._backups:
                return  # kept for after the backup: `_forgettable` only grows
            seq, self._forgettable = self._forgettable, 0
        if seq:
            self._forget_removed(seq)

    def _forget_removed(self, up_to_seq: int) -> None:
        try:
            self.store.forget_removed(up_to_seq)
        except (sqlite3.Error, StorageFull) as exc:  # kept records are only replayed needlessly: retried later
            log.warning("removals_not_forgotten", collection=self.info.name, error=str(exc))

    def wait_for_snapshot(self) -> None:
        """Block until a background snapshot in progress has finished (for tests and shutdown)."""
        saving = self._saving
        if saving is not None:
            saving.result()
