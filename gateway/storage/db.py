"""One collection's documents in SQLite: the source of truth the vector index is rebuilt from.

WAL mode with `synchronous=FULL`: a commit returns only after the WAL is on disk, so an
acknowledged write survives `kill -9` and power loss. Every document row has an integer `key`
(AUTOINCREMENT: never reused) that is also its key in the USearch index. Replacing or deleting a
document writes its old key to `removed`, so the index can be brought up to date from a snapshot
by replaying rows with a newer key and removals with a newer `seq`.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gateway.storage import fulltext
from gateway.storage.datadir import data_dir_of, is_disk_full, no_space
from gateway.storage.engine import NewDocument, StoredDocument
from gateway.storage.errors import DataDirUnusable, ModelChanged
from gateway.storage.filters import Filter

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL UNIQUE,
    text TEXT,
    metadata TEXT,
    generated INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
-- Vectors apart: a filter scans documents' metadata without paging 1.5 KB of vector per row.
CREATE TABLE IF NOT EXISTS vectors (key INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS removed (seq INTEGER PRIMARY KEY AUTOINCREMENT, key INTEGER NOT NULL);
"""
DB_FILE = "documents.sqlite3"
# Keys up to which `fetch` binds one parameter each (a search's k); more go in as one JSON array.
FETCH_PARAMS = 100


@dataclass(frozen=True)
class WriteResult:
    """What one committed transaction changed, for the index to follow."""

    added_keys: np.ndarray  # uint64, in input order
    removed_keys: list[int]
    marks: tuple[int, int]  # `watermarks()` just after this commit: what an index that follows it reflects


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN ourselves), durable commits, WAL."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    if readonly:
        conn.execute("PRAGMA query_only=1")
    return conn


def connect_immutable(path: Path) -> sqlite3.Connection:
    """A read connection that needs no room on the disk: no -shm file, no lock, the WAL ignored.

    Right only for a database whose WAL is empty (everything committed is in the main file) and that
    nothing writes while the connection is open: SQLite then reads the file as it is.
    """
    return sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True, check_same_thread=False)


def _open_writer(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    try:
        conn.executescript(SCHEMA)
    except BaseException:
        conn.close()  # a corrupt file: let the caller report it with nothing left open
        raise
    return conn


def _wal_is_empty(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    return not wal.exists() or wal.stat().st_size == 0


class DocumentStore:
    """SQLite access for one collection. Writes come from one thread; reads use a small pool.

    A database closed cleanly has no -wal or -shm file, and opening it in WAL mode must create a
    32 KiB -shm: on a full disk that fails (SQLITE_IOERR_SHMSIZE). Such a store opens read-only
    instead (`readonly`), reading the main file through immutable connections, and every write raises
    `StorageFull` until `make_writable` succeeds once space returns.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / DB_FILE
        self.readonly = False
        self._writer_conn: sqlite3.Connection | None
        try:
            self._writer_conn = _open_writer(self.path)
        except sqlite3.Error as exc:
            if not is_disk_full(exc):
                raise
            if not _wal_is_empty(self.path):
                raise DataDirUnusable(
                    f"the disk holding {self.path} is full, and its write-ahead log {self.path}-wal holds commits "
                    "that need room on the disk to be read; free space there and start the gateway again"
                ) from None
            self._writer_conn, self.readonly = None, True
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._closed = threading.Event()
        self.word_counts = fulltext.WordCounts()

    @property
    def _writer(self) -> sqlite3.Connection:
        if self._writer_conn is None:
            raise no_space(data_dir_of(self.path.parent))
        return self._writer_conn

    def make_writable(self) -> bool:
        """Open the write connection of a store opened read-only on a full disk (writer thread); True if it
        was read-only. Raises SQLite's error while the disk still has no room. The caller keeps reads
        away meanwhile: the immutable connections go, and none may be reading while writes start."""
        if not self.readonly:
            return False
        self._writer_conn = _open_writer(self.path)
        self.readonly = False
        self._close_readers()
        return True

    def ensure_fulltext(self, progress: fulltext.Progress | None = None) -> int | None:
        """Build the full-text index if this database predates it (`fulltext.ensure`); writer thread only.

        An index that exists is found with a read, so a read-only store reports it without writing."""
        with self._reader() as conn:
            if fulltext.exists(conn):
                return None
        return fulltext.ensure(self._writer, progress)

    def keyword(self, text: str, syntax: str, limit: int, flt: Filter | None, total: int) -> list[tuple[int, float]]:
        """(key, BM25 score) of the best documents for a text query that pass the filter (`fulltext.search`).

        `syntax` "plain": the text's words, less those in a large share of the `total` documents;
        "fts5": FTS5 query syntax, whose parse errors are `KeywordSyntaxError`.
        """
        with self._reader() as conn:
            if syntax == "fts5":
                return fulltext.search(conn, text, limit, flt, user_syntax=True)
            expression = fulltext.plain_expression(conn, text, self.word_counts, total)
            return fulltext.search(conn, expression, limit, flt)

    # -- meta --------------------------------------------------------------------------------
    def set_meta(self, name: str, value: str) -> None:
        """Store one named setting (the collection's description lives here)."""
        self._writer.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def get_meta(self, name: str) -> str | None:
        with self._reader() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    # -- writes (the collection's writer thread only) -----------------------------------------
    def upsert(self, docs: Sequence[NewDocument], vectors: np.ndarray) -> WriteResult:
        """Insert or replace all documents in one transaction: all are stored, or none.

        `vectors` holds the documents' vectors as one (n, dimension) float32 matrix, in their order.

        One statement per table for the whole batch (`executemany`), not three per document: at 1,000
        documents a request, per-row statements cost more than the commit's fsync.
        """
        if len({d.doc_id for d in docs}) != len(docs):
            raise ValueError("a batch must not hold the same doc_id twice")  # the index could not follow
        conn = self._writer
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            old = conn.execute(
                "SELECT key FROM documents WHERE doc_id IN (SELECT value FROM json_each(?)) ORDER BY key",
                (json.dumps([d.doc_id for d in docs]),),
            ).fetchall()
            removed = [int(r[0]) for r in old]
            if removed:
                self._remove_keys(conn, removed)
            # The keys AUTOINCREMENT would assign one by one: the writer holds the database, and the
            # sequence is at least every key ever used, so nothing can take them meanwhile.
            first = self._watermarks(conn)[0] + 1
            added = np.arange(first, first + len(docs), dtype=np.uint64)
            keys = range(first, first + len(docs))
            conn.executemany(
                "INSERT INTO documents (key, doc_id, text, metadata, generated, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(k, d.doc_id, d.text, d.metadata, d.generated, now) for k, d in zip(keys, docs, strict=True)],
            )
            conn.executemany(
                "INSERT INTO vectors (key, vector) VALUES (?, ?)",
                zip(keys, (row.tobytes() for row in vectors), strict=True),
            )
            marks = self._watermarks(conn)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return WriteResult(added, removed, marks)

    def delete(self, doc_id: str) -> int | None:
        """Delete one document; returns its key, or None if there was none."""
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT key FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is not None:
                self._remove_key(conn, row[0])
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return None if row is None else int(row[0])

    @staticmethod
    def _remove_key(conn: sqlite3.Connection, key: int) -> None:
        DocumentStore._remove_keys(conn, [key])

    @staticmethod
    def _remove_keys(conn: sqlite3.Connection, keys: list[int]) -> None:
        params = [(k,) for k in keys]
        conn.executemany("DELETE FROM documents WHERE key = ?", params)
        conn.executemany("DELETE FROM vectors WHERE key = ?", params)
        conn.executemany("INSERT INTO removed (key) VALUES (?)", params)

    def forget_removed(self, up_to_seq: int) -> None:
        """Drop removal records a saved index snapshot already reflects."""
        self._writer.execute("DELETE FROM removed WHERE seq <= ?", (up_to_seq,))

    def watermarks(self) -> tuple[int, int]:
        """(last key ever assigned, last removal seq): the state an index snapshot reflects."""
        if self._writer_conn is None:
            with self._reader() as conn:
                return self._watermarks(conn)
        return self._watermarks(self._writer_conn)

    @staticmethod
    def _watermarks(conn: sqlite3.Connection) -> tuple[int, int]:
        rows = dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
        return int(rows.get("documents", 0)), int(rows.get("removed", 0))

    # -- replay -------------------------------------------------------------------------------
    def vectors_after(self, key: int, batch: int = 4096) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """(keys, vector blobs) of live documents with a key above `key`, in key order, in batches."""
        with self._reader() as conn:
            cur = conn.execute("SELECT key, vector FROM vectors WHERE key > ? ORDER BY key", (key,))
            while rows := cur.fetchmany(batch):
                yield np.array([r[0] for r in rows], dtype=np.uint64), [r[1] for r in rows]

    def removed_after(self, seq: int) -> list[int]:
        """Keys removed after removal number `seq`."""
        with self._reader() as conn:
            return [int(r[0]) for r in conn.execute("SELECT key FROM removed WHERE seq > ?", (seq,))]

    # -- reads --------------------------------------------------------------------------------
    def count(self) -> int:
        """How many documents the collection holds."""
        with self._reader() as conn:
            row = conn.execute("SELECT COUNT(*) FROM documents").fetchone()
        return int(row[0])

    def get(self, doc_id: str, with_vector: bool) -> StoredDocument | None:
        with self._reader() as conn:
            row = conn.execute(
                f"SELECT {_columns(with_vector)} WHERE d.doc_id = ?",
                (doc_id,),
            ).fetchone()
        return None if row is None else _document(row)

    def fetch(self, keys: Sequence[int], include: frozenset[str]) -> dict[int, StoredDocument]:
        """The documents behind index keys (missing ones are left out), with only the fields in `include`
        ("text", "metadata", "vector"); the others are None."""
        if not keys:
            return {}
        params: tuple[Any, ...]
        if len(keys) <= FETCH_PARAMS:  # one cached statement per count: half the time of json_each
            where, params = f"IN ({','.join('?' * len(keys))})", tuple(keys)
        else:
            where, params = "IN (SELECT value FROM json_each(?))", (_json_ints(keys),)
        with self._reader() as conn:
            rows = conn.execute(f"SELECT {_fields(include)} WHERE d.key {where}", params).fetchall()
        return {r[0]: _document(r) for r in rows}

    def page(self, after_key: int, limit: int, with_vector: bool) -> list[StoredDocument]:
        """Up to `limit` documents with a key above `after_key`, in key (insertion) order."""
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT {_columns(with_vector)} WHERE d.key > ? ORDER BY d.key LIMIT ?",
                (after_key, limit),
            ).fetchall()
        return [_document(r) for r in rows]

    def filter_keys(self, flt: Filter, after_key: int, up_to_key: int) -> np.ndarray:
        """Sorted keys in (after_key, up_to_key] of the documents that pass the filter."""
        with self._reader() as conn:
            rows = conn.execute(
                f"SELECT key FROM documents WHERE key > ? AND key <= ? AND {flt.sql} ORDER BY key",
                (after_key, up_to_key, *flt.params),
            ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows))

    def removed_between(self, after_seq: int, up_to_seq: int) -> np.ndarray | None:
        """Keys removed by the removals numbered (after_seq, up_to_seq]; None if a snapshot has since
        forgotten some of them (they are numbered without gaps, so a short count shows it)."""
        if up_to_seq <= after_seq:
            return np.empty(0, dtype=np.uint64)
        with self._reader() as conn:
            rows = conn.execute("SELECT key FROM removed WHERE seq > ? AND seq <= ?", (after_seq, up_to_seq)).fetchall()
        if len(rows) != up_to_seq - after_seq:
            return None
        return np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows))

    def vectors_of(self, keys: np.ndarray, dimension: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, vectors) of those of `keys` still stored, in key order; `ModelChanged` if the stored
        vectors no longer have `dimension` (a re-embedding swapped them)."""
        if not len(keys):
            return keys, np.empty((0, dimension), dtype=np.float32)
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT key, vector FROM vectors WHERE key IN (SELECT value FROM json_each(?)) ORDER BY key",
                (_json_ints(keys.tolist()),),
            ).fetchall()
        blobs = [r[1] for r in rows]
        if any(len(b) != dimension * 4 for b in blobs):
            raise ModelChanged("the collection's vectors changed dimension (re-embedded); retry")
        return np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows)), vector_matrix(blobs, dimension)

    # -- connections --------------------------------------------------------------------------
    def writer_connection(self) -> sqlite3.Connection:
        """The write connection, for tables kept beside the documents (the writer thread only)."""
        return self._writer

    def reading(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A read connection from the pool, for tables kept beside the documents."""
        return self._reader()

    def reader_idle(self) -> bool:
        """Whether a read connection is open and free: a read then opens none (which may wait on locks)."""
        return not self._readers.empty()

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = connect_immutable(self.path) if self.readonly else connect(self.path, readonly=True)
        readonly = self.readonly
        try:
            yield conn
        finally:
            if self._closed.is_set() or readonly != self.readonly:  # closed, or made writable meanwhile
                conn.close()
            else:
                self._readers.put(conn)

    def close(self) -> None:
        """Close every connection; call once no reader or writer is running."""
        self._closed.set()
        if self._writer_conn is not None:
            self._writer_conn.close()
        self._close_readers()

    def _close_readers(self) -> None:
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction. SQLite may have rolled it back itself (a full disk, an I/O error), and a
    second ROLLBACK would then raise and hide the error that matters."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _document(row: tuple[Any, ...]) -> StoredDocument:
    key, doc_id, text, metadata, vector, generated = row
    return StoredDocument(key, doc_id, text, metadata, vector, bool(generated))


def vector_matrix(blobs: Sequence[bytes], dimension: int) -> np.ndarray:
    """Stored float32 vector blobs as one (n, dimension) matrix, without a copy per row."""
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dimension)


def _columns(with_vector: bool) -> str:
    """Columns and FROM for a StoredDocument; vectors (1.5 KB at 384-d) are read only when shown."""
    if with_vector:
        return (
            "d.key, d.doc_id, d.text, d.metadata, v.vector, d.generated"
            " FROM documents AS d JOIN vectors AS v ON v.key = d.key"
        )
    return "d.key, d.doc_id, d.text, d.metadata, NULL, d.generated FROM documents AS d"


def _fields(include: frozenset[str]) -> str:
    """Columns and FROM for a StoredDocument with only some fields: a search reads no text it will not show."""
    text = "d.text" if "text" in include else "NULL"
    metadata = "d.metadata" if "metadata" in include else "NULL"
    if "vector" in include:
        vector, tables = "v.vector", "documents AS d JOIN vectors AS v ON v.key = d.key"
    else:
        vector, tables = "NULL", "documents AS d"
    return f"d.key, d.doc_id, {text}, {metadata}, {vector}, d.generated FROM {tables}"


def _json_ints(keys: Sequence[int]) -> str:
    return "[" + ",".join(str(int(k)) for k in keys) + "]"
