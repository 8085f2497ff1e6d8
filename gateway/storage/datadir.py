"""The data directory: an exclusive lock, and one folder per collection created and removed atomically.

<data_dir>/LOCK                      flock()ed by the one gateway that owns the directory
<data_dir>/.space-probe              written and removed at once to learn whether a full disk has room again
<data_dir>/collections/<id>/         documents.sqlite3 (+ -wal, -shm), index-<key>-<seq>.usearch
<data_dir>/collections/.new-<id>/    a collection being created (renamed into place when complete)
<data_dir>/collections/.gone-<id>/   a collection being deleted (renamed out of place first)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import structlog

from gateway.storage.errors import DataDirUnusable, StorageError, StorageFull

log = structlog.get_logger("gateway.storage")


# Written (and removed at once) to learn whether the disk has room again; a batch of a few hundred
# short documents fits in it.
PROBE = ".space-probe"
PROBE_BYTES = 256 * 1024


class DataDir:
    """Owns `<data_dir>` while the lock is held."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.collections = self.root / "collections"
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        """Create the directory if needed and lock it: `DataDirUnusable` if it cannot be created or
        written, `StorageError` if another gateway holds it."""
        try:
            self.collections.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DataDirUnusable(
                f"cannot use data directory {self.root} (storage.data_dir): {_os_reason(exc)}; "
                "make it writable by this user or point storage.data_dir (--data-dir) elsewhere"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StorageError(
                f"data directory {self.root} is in use by another gateway (pid {holder}); "
                "stop that gateway or give this one another storage.data_dir (--data-dir)"
            ) from None
        self._lock_fd = fd
        self._record_pid(fd)
        self._sweep()

    @staticmethod
    def _record_pid(fd: int) -> None:
        """Write our pid into LOCK, for the message another gateway shows. Over the old pid, then cut to
        length: a full disk then refuses at most a first write, and the pid is only ever informative."""
        pid = f"{os.getpid()}\n".encode()
        try:
            os.pwrite(fd, pid, 0)
            os.ftruncate(fd, len(pid))
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            log.warning("lock_pid_not_recorded", error=str(exc))

    def has_room(self, nbytes: int = PROBE_BYTES) -> bool:
        """Whether `nbytes` can be written under the data dir now: written to a probe file, then removed.

        Free-space figures miss quotas and the blocks reserved for root; a write meets the same limits
        as the database's. Raises other OS errors (an unwritable directory is not a full one).
        """
        probe = self.root / PROBE
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"\0" * nbytes)
            finally:
                os.close(fd)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            return False
        finally:
            probe.unlink(missing_ok=True)
        return True

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def _sweep(self) -> None:
        """Finish what a crash interrupted: half-made collections go, half-deleted ones go too."""
        (self.root / PROBE).unlink(missing_ok=True)
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


def _os_reason(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def data_dir_of(folder: Path) -> Path:
    """The data directory a collection folder (`<data_dir>/collections/<id>`) or `collections` lives in."""
    if folder.name == "collections":
        return folder.parent
    return folder.parent.parent if folder.parent.name == "collections" else folder


def is_disk_full(exc: BaseException) -> bool:
    """Whether an SQLite or OS error means the disk (or the quota) has no room left."""
    if isinstance(exc, sqlite3.Error):
        # SHMSIZE: the -shm file a WAL database needs could not be given its size (a first open on a full disk).
        code = getattr(exc, "sqlite_errorcode", None)
        return code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR_SHMSIZE) or "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: Path) -> int | None:
    """Bytes free for this user on the file system holding `path` (None if it cannot be read)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def no_space(data_dir: Path) -> StorageFull:
    """The error for a write the disk had no room for, naming the data dir and its free space."""
    free = free_bytes(data_dir)
    left = "unknown" if free is None else _size(free)
    return StorageFull(
        f"no space left to store this write under storage.data_dir {data_dir} ({left} free); nothing of it "
        "was stored. Free space on that disk (or move storage.data_dir) and retry; reads and searches still work"
    )


def _size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB"):
        if size < 1024:
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def refused_when_full(folder: Path) -> Iterator[None]:
    """Turn an SQLite or OS error meaning "no space left" into `StorageFull`, naming the data dir."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        if not is_disk_full(exc):
            raise
        data_dir = data_dir_of(folder)
        log.warning("write_refused_disk_full", data_dir=str(data_dir), free_bytes=free_bytes(data_dir), error=str(exc))
        raise no_space(data_dir) from exc
