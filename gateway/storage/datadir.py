"""The data directory: an exclusive lock, and one folder per collection created and removed atomically.

<data_dir>/LOCK                      flock()ed by the one gateway that owns the directory
<data_dir>/collections/<id>/         documents.sqlite3 (+ -wal, -shm), index-<key>-<seq>.usearch
<data_dir>/collections/.new-<id>/    a collection being created (renamed into place when complete)
<data_dir>/collections/.gone-<id>/   a collection being deleted (renamed out of place first)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

import structlog

from gateway.storage.errors import StorageError

log = structlog.get_logger("gateway.storage")


class DataDir:
    """Owns `<data_dir>` while the lock is held."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.collections = self.root / "collections"
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        """Create the directory if needed and lock it; `StorageError` if another gateway holds it."""
        try:
            self.collections.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot use data directory {self.root} (storage.data_dir): {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StorageError(
                f"data directory {self.root} is in use by another gateway (pid {holder}); "
                "stop that gateway or give this one another storage.data_dir (--data-dir)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        self._sweep()

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def _sweep(self) -> None:
        """Finish what a crash interrupted: half-made collections go, half-deleted ones go too."""
        for path in self.collections.iterdir():
            if path.name.startswith((".new-", ".gone-")):
                shutil.rmtree(path, ignore_errors=True)
                log.info("data_dir_swept", path=str(path))

    def existing(self) -> list[Path]:
        """Folders of complete collections."""
        return sorted(p for p in self.collections.iterdir() if p.is_dir() and not p.name.startswith("."))

    def staging(self, collection_id: str) -> Path:
        """An empty folder to build a new collection in; `publish` moves it into place."""
        path = self.collections / f".new-{collection_id}"
        path.mkdir()
        return path

    def publish(self, staging: Path, collection_id: str) -> Path:
        final = self.collections / collection_id
        os.replace(staging, final)
        fsync_path(self.collections)
        return final

    def remove(self, folder: Path) -> None:
        """Delete a collection folder: renamed away first, so a crash never leaves half a collection."""
        gone = folder.with_name(f".gone-{folder.name}")
        with contextlib.suppress(FileNotFoundError):
            os.replace(folder, gone)
            fsync_path(self.collections)
        shutil.rmtree(gone, ignore_errors=True)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
