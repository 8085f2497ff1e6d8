"""Collection snapshots (backups): one file per snapshot that a new collection can be restored from.

Not the index snapshots of `index.py` (those make a restart fast and stay inside a collection folder).
A collection snapshot is an uncompressed tar (vectors do not compress) holding

    documents.sqlite3              the documents in the embedded engine's schema: SQLite's online backup of an
                                   embedded collection, or a PostgreSQL collection's rows (`snapshot_db`)
    index-<key>-<seq>.usearch      the index as of a commit the database copy holds (a restore replays the rest;
                                   empty, index-0-0, from an engine without USearch)
    manifest.json                  format, the engine that wrote it, the collection's description, document
                                   count, sha256 and size per member
    manifest.sha256                the sha256 of manifest.json
    manifest.hmac                  with `storage.snapshot_hmac_key` set: the HMAC-SHA256 of manifest.json

The format is the same whichever engine writes it, and either engine restores it: the embedded one opens the
database, the PostgreSQL one reads its rows back into a table. A manifest without `engine` (written before it
was recorded) came from the embedded engine.

The sums catch damage only: they sit in the file they cover. What a restore checks beyond them, treating the
upload as hostile, is in `snapshot_trust.py`.

<data_dir>/snapshots/<collection name>/<name>.akidb-snapshot    a finished snapshot
<data_dir>/snapshots/<collection name>/.<name>.*                one being written (swept at start)
<data_dir>/snapshots/.upload-*                                  an upload being received for a restore

Snapshots are kept by collection name and outlive the collection: a backup survives the delete it guards against.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import structlog

from gateway.storage.datadir import fsync_path, refused_when_full
from gateway.storage.db import DB_FILE, connect
from gateway.storage.engine import CollectionInfo
from gateway.storage.errors import SnapshotInvalid, SnapshotNotFound
from gateway.storage.index import SNAPSHOT as INDEX_FILE
from gateway.storage.snapshot_trust import (
    SIGNATURE,
    check_database,
    check_index,
    check_member,
    read_manifest,
    sign,
    verify_signature,
)

log = structlog.get_logger("gateway.storage")

SUFFIX = ".akidb-snapshot"
FORMAT = 1
MANIFEST, MANIFEST_SUM = "manifest.json", "manifest.sha256"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
CHUNK = 1 << 20
MAX_MANIFEST = 1 << 20  # a manifest is a few hundred bytes; anything near this is not ours


@dataclass(frozen=True)
class BackupInfo:
    """One stored snapshot as the API lists it."""

    name: str
    collection: str
    size: int
    created_at: float
    documents: int


@dataclass(frozen=True)
class Source:
    """What an engine wrote into a snapshot's work folder: the documents database (`DB_FILE` there), its
    document count, and the index as of a commit that database holds, with its member name."""

    documents: int
    index_name: str
    index: bytes


@dataclass(frozen=True)
class Unpacked:
    """What a verified snapshot held: the collection description (as JSON text) and its document count."""

    info_json: str
    documents: int
    collection: dict[str, Any]  # the same description, parsed
    index_file: str
    engine: str  # the engine that wrote it


class Backups:
    """The snapshots folder of a data directory."""

    def __init__(self, data_root: Path, rate_mb_s: float = 0.0, hmac_key: str | None = None) -> None:
        self.root = data_root / "snapshots"
        self.rate = rate_mb_s * 1_000_000
        self.hmac_key = hmac_key

    def sweep(self) -> None:
        """Remove what a crash left half-written: hidden work files in every collection's folder, and uploads."""
        if not self.root.is_dir():
            return
        for path in [*self.root.glob(".*"), *self.root.glob("*/.*")]:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            log.info("collection_snapshot_swept", path=str(path))

    def folder(self, collection: str) -> Path:
        return self.root / collection

    def path(self, collection: str, name: str) -> Path:
        """The file of a stored snapshot; `SnapshotNotFound` for any other name (no path from a request reaches
        the disk unchecked)."""
        path = self.folder(collection) / f"{name}{SUFFIX}"
        if not NAME.match(name) or not path.is_file():
            raise SnapshotNotFound(
                f"no snapshot {name!r} of collection {collection!r}; "
                f"GET /collections/{collection}/snapshots lists them",
                param="name",
            )
        return path

    def list(self, collection: str) -> list[BackupInfo]:
        """Finished snapshots of a collection, oldest first."""
        folder = self.folder(collection)
        if not folder.is_dir():
            return []
        found = []
        for path in folder.glob(f"[!.]*{SUFFIX}"):
            try:
                found.append(self._describe(collection, path))
            except (OSError, ValueError, tarfile.TarError, KeyError) as exc:  # damaged on disk: said, not listed
                log.warning("collection_snapshot_unreadable", path=str(path), error=f"{type(exc).__name__}: {exc}")
        return sorted(found, key=lambda b: (b.created_at, b.name))

    def _describe(self, collection: str, path: Path) -> BackupInfo:
        with tarfile.open(path, "r:") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            manifest = json.loads(member.read(MAX_MANIFEST))
        name = path.name[: -len(SUFFIX)]
        return BackupInfo(name, collection, path.stat().st_size, manifest["created_at"], manifest["documents"])

    def delete(self, collection: str, name: str) -> None:
        path = self.path(collection, name)
        path.unlink()
        fsync_path(path.parent)

    def create(self, info: CollectionInfo, engine: str, write: Callable[[Path], Source]) -> BackupInfo:
        """Write a snapshot of a collection while it keeps serving: `write` puts its documents database in the
        work folder it is given; then temp name, fsync, rename. Nothing is listed until it is complete; on any
        failure the partial files are removed and the error raised."""
        started = time.perf_counter()
        created = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
        name = f"{info.name}-{stamp}-{secrets.token_hex(2)}"
        folder = self.folder(info.name)
        folder.mkdir(parents=True, exist_ok=True)
        work = folder / f".{name}.work"
        tmp = folder / f".{name}{SUFFIX}.tmp"
        final = folder / f"{name}{SUFFIX}"
        work.mkdir()
        try:
            source = write(work)
            db_copy = work / DB_FILE
            members: dict[str, dict[str, Any]] = {}
            with open(tmp, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w:", format=tarfile.PAX_FORMAT) as tar:
                    with open(db_copy, "rb") as f:
                        members[DB_FILE] = self._add(tar, DB_FILE, f, db_copy.stat().st_size)
                    members[source.index_name] = self._add(
                        tar, source.index_name, io.BytesIO(source.index), len(source.index)
                    )
                    manifest = json.dumps(
                        {
                            "format": FORMAT,
                            "engine": engine,
                            "collection": json.loads(info.to_json()),
                            "documents": source.documents,
                            "created_at": created,
                            "members": members,
                        },
                        sort_keys=True,
                    ).encode()
                    self._add(tar, MANIFEST, io.BytesIO(manifest), len(manifest))
                    digest = hashlib.sha256(manifest).hexdigest().encode()
                    self._add(tar, MANIFEST_SUM, io.BytesIO(digest), len(digest))
                    if self.hmac_key is not None:
                        signature = sign(manifest, self.hmac_key)
                        self._add(tar, SIGNATURE, io.BytesIO(signature), len(signature))
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, final)
            fsync_path(folder)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        made = BackupInfo(name, info.name, final.stat().st_size, created, source.documents)
        log.info(
            "collection_snapshot_created",
            collection=info.name,
            snapshot=name,
            engine=engine,
            documents=source.documents,
            bytes=made.size,
            seconds=round(time.perf_counter() - started, 3),
        )
        return made

    def _add(self, tar: tarfile.TarFile, name: str, source: IO[bytes], size: int) -> dict[str, Any]:
        """Add one member, hashing it on the way (and paced to `storage.snapshot_rate_mb_s` if set)."""
        member = tarfile.TarInfo(name)
        member.size, member.mtime, member.mode = size, int(time.time()), 0o644
        reader = _Hashing(source, self.rate)
        tar.addfile(member, reader)
        return {"sha256": reader.digest.hexdigest(), "size": size}

    @contextlib.contextmanager
    def upload_file(self) -> Iterator[Path]:
        """A temporary file for an upload being received (removed after the block, whatever happens)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f".upload-{secrets.token_hex(8)}"
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)


def restore_folder(data_root: Path) -> Path:
    """A new empty folder under `<data_dir>/snapshots` to unpack an upload into, for an engine that reads the
    unpacked files rather than keeping them; the caller removes it (`Backups.sweep` does after a crash)."""
    path = data_root / "snapshots" / f".restore-{secrets.token_hex(8)}"
    with refused_when_full(data_root):
        path.mkdir(parents=True)
    return path


def copy_database(source: Path, target: Path) -> int:
    """SQLite's online backup of a live database in one step (one read transaction: a consistent copy, and
    in WAL mode writers go on meanwhile); returns the copy's document count."""
    src = connect(source, readonly=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA synchronous=FULL")
        count = int(dst.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
    finally:
        dst.close()
        src.close()
    return count


def unpack(archive: Path, staging: Path, max_bytes: int, hmac_key: str | None = None) -> Unpacked:
    """Extract a snapshot into an empty collection folder, checking every member against the manifest, the
    signature if `hmac_key` is set, and the database (`snapshot_trust`). At most `max_bytes` are written.

    `SnapshotInvalid` says what is wrong (truncated, altered, not a snapshot); the caller removes `staging`.
    """
    seen: dict[str, tuple[str, int]] = {}
    small: dict[str, bytes] = {}  # the manifest, its sum and its signature
    budget = max_bytes
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                check_member(member)
                source = tar.extractfile(member)
                assert source is not None
                if member.name in (MANIFEST, MANIFEST_SUM, SIGNATURE):
                    if member.name in small:
                        raise SnapshotInvalid(f"member {member.name!r} appears twice; this is not an AkiDB snapshot")
                    if member.size > MAX_MANIFEST:
                        raise SnapshotInvalid(f"{member.name} is {member.size} bytes; this is not an AkiDB snapshot")
                    small[member.name] = source.read()
                    if len(small[member.name]) != member.size:
                        raise SnapshotInvalid(_truncated(member.name))
                    continue
                if member.name != DB_FILE and not INDEX_FILE.match(member.name):
                    raise SnapshotInvalid(f"unexpected member {member.name!r}; this is not an AkiDB snapshot")
                if member.name in seen:
                    raise SnapshotInvalid(f"member {member.name!r} appears twice; this is not an AkiDB snapshot")
                if member.size > budget:
                    raise SnapshotInvalid(
                        f"the snapshot's members hold more than storage.max_restore_bytes ({max_bytes}) bytes"
                    )
                seen[member.name] = _extract(source, staging / member.name, member.size)
                budget -= member.size
            end = tar.offset
    except (tarfile.TarError, ValueError, EOFError, OverflowError) as exc:
        # tarfile meets hostile headers (a PAX sparse map, a bad number) with ValueError as well as TarError.
        raise SnapshotInvalid(f"the file is truncated or not an AkiDB snapshot ({type(exc).__name__})") from None
    unpacked = _check(small.get(MANIFEST, b""), small.get(MANIFEST_SUM, b""), seen)
    verify_signature(small[MANIFEST], small.get(SIGNATURE), hmac_key)
    _check_end(archive, end)
    check_database(staging / DB_FILE, unpacked.collection["dimension"], unpacked.documents)
    check_index(staging / unpacked.index_file, unpacked.collection)
    return unpacked


def _check_end(archive: Path, end: int) -> None:
    """After the last member comes tar's end marker (two zero blocks) and zero padding to a whole record:
    a file cut anywhere, even inside that padding, or with bytes after it, is not the file that was written."""
    size = archive.stat().st_size
    trailer = size - end
    if trailer < 2 * tarfile.BLOCKSIZE or size % tarfile.RECORDSIZE:
        raise SnapshotInvalid("the end of the file is missing: the file is truncated")
    if trailer > 2 * tarfile.BLOCKSIZE + tarfile.RECORDSIZE:
        raise SnapshotInvalid(f"{trailer} unexpected bytes after the last member: the file was altered or damaged")
    with open(archive, "rb") as f:
        f.seek(end)
        if f.read().strip(b"\0"):
            raise SnapshotInvalid("checksum mismatch in the end padding: the file was altered or damaged")


def _extract(source: IO[bytes], target: Path, size: int) -> tuple[str, int]:
    """Write one member, never more than its stated `size` (which the caller has counted against its budget)."""
    digest, written = hashlib.sha256(), 0
    with open(target, "wb") as out:
        while written < size and (chunk := source.read(min(CHUNK, size - written))):
            digest.update(chunk)
            out.write(chunk)
            written += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    if written != size:
        raise SnapshotInvalid(_truncated(target.name))
    return digest.hexdigest(), written


def _check(manifest_raw: bytes, digest_raw: bytes, seen: dict[str, tuple[str, int]]) -> Unpacked:
    """Every checksum first: the manifest's own, then each member's against it."""
    if not manifest_raw or not digest_raw:
        missing = MANIFEST if not manifest_raw else MANIFEST_SUM
        raise SnapshotInvalid(f"{missing} is missing: the file is truncated or not an AkiDB snapshot")
    if hashlib.sha256(manifest_raw).hexdigest() != digest_raw.decode(errors="replace").strip():
        raise SnapshotInvalid(f"checksum mismatch in {MANIFEST}: the file was altered or damaged")
    manifest = read_manifest(manifest_raw, FORMAT)
    for name, (digest, size) in manifest.members.items():
        if name not in seen:
            raise SnapshotInvalid(f"member {name!r} is missing: the file is truncated or damaged")
        if seen[name] != (digest, size):
            raise SnapshotInvalid(f"checksum mismatch in {name}: the file was altered or damaged")
    extra = set(seen) - set(manifest.members)
    if extra or DB_FILE not in seen:
        raise SnapshotInvalid(f"members {sorted(extra) or [DB_FILE]} do not match the manifest")
    indexes = [name for name in seen if INDEX_FILE.match(name)]
    if len(indexes) != 1:
        raise SnapshotInvalid(f"the snapshot holds {len(indexes)} indexes, not one: this is not an AkiDB snapshot")
    return Unpacked(
        json.dumps(manifest.collection), manifest.documents, manifest.collection, indexes[0], manifest.engine
    )


def _truncated(name: str) -> str:
    return f"member {name!r} is cut short: the file is truncated"


class _Hashing(io.RawIOBase):
    """A reader that hashes what passes through, sleeping to keep to `rate` bytes a second (0: no limit)."""

    def __init__(self, source: IO[bytes], rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.source, self.rate, self.clock = source, rate, clock
        self.digest = hashlib.sha256()
        self.started, self.done = clock(), 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(min(size, CHUNK) if size and size > 0 else CHUNK)
        self.digest.update(data)
        self.done += len(data)
        if self.rate:
            ahead = self.done / self.rate - (self.clock() - self.started)
            if ahead > 0:
                time.sleep(ahead)
        return data
