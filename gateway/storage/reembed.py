"""Re-embedding's storage: a job's record and its new vectors in the collection's own database, and the swap.

Tables (in the collection's database, so a job's progress commits with its vectors):

  reembed_jobs     one row per job: the new model, state, `last_key` (every document up to it is done)
  reembed_vectors  the new model's vectors by document key, until the swap moves them into `vectors`

The job walks documents in key order. A document inserted or replaced during the job gets a key above
every older one (AUTOINCREMENT), so the walk reaches it: inserts made during the job need no second
embedding on the insert path. A deleted or replaced document leaves a stale row here, dropped at the swap.

Every function that writes runs on the collection's writer thread (`Collection.writer`), so it is
ordered with inserts and deletes; the swap in particular sees no write between its check and its commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import Iterator

import numpy as np
import structlog

from gateway.storage.collection import Collection
from gateway.storage.datadir import refused_when_full
from gateway.storage.db import _rollback
from gateway.storage.engine import CANCELLED, DONE, FAILED, RUNNING, JobRecord, Pending

__all__ = ["CANCELLED", "DONE", "FAILED", "RUNNING", "JobRecord", "Pending"]  # the states and values, as before
from gateway.storage.errors import JobConflict, JobNotFound, VectorOnlyDocuments
from gateway.storage.index import VectorIndex, discard_partial, snapshots

log = structlog.get_logger("gateway.storage")

SCHEMA = """
CREATE TABLE IF NOT EXISTS reembed_jobs (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    pooling TEXT,
    dimension INTEGER NOT NULL,
    drop_vector_only INTEGER NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    last_key INTEGER NOT NULL,
    done INTEGER NOT NULL,
    total INTEGER NOT NULL,
    vector_only INTEGER NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0,
    resumed_from INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS reembed_vectors (key INTEGER PRIMARY KEY, vector BLOB NOT NULL);
"""
COLUMNS = (
    "id, model, pooling, dimension, drop_vector_only, state, error, last_key, done, total, vector_only, dropped, "
    "resumed_from, created_at, finished_at"
)


@contextlib.contextmanager
def _transaction(col: Collection) -> Iterator[sqlite3.Connection]:
    conn = col.store.writer_connection()
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _record(row: tuple[object, ...]) -> JobRecord:
    values = list(row)
    values[4] = bool(values[4])
    return JobRecord(*values)  # type: ignore[arg-type]


def ensure_schema(col: Collection) -> None:
    """Create the job tables if this collection has none yet (writer thread); `StorageFull` if no room.

    Only starting a job needs them: a collection that never had one has no job to read or resume,
    so reading needs no write (a gateway started on a full disk reads without them).
    """
    conn = col.store.writer_connection()
    if not _has_tables(conn):
        with refused_when_full(col.folder):
            conn.executescript(SCHEMA)


def _has_tables(conn: sqlite3.Connection) -> bool:
    found = conn.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('reembed_jobs', 'reembed_vectors')"
    ).fetchone()
    return int(found[0]) == 2


def jobs(col: Collection) -> list[JobRecord]:
    """Every job this collection has had, oldest first."""
    with col.store.reading() as conn:
        if not _has_tables(conn):
            return []
        rows = conn.execute(f"SELECT {COLUMNS} FROM reembed_jobs ORDER BY created_at").fetchall()
    return [_record(r) for r in rows]


def job(col: Collection, job_id: str) -> JobRecord:
    """One job; `JobNotFound` if this collection has none by that id."""
    with col.store.reading() as conn:
        row = None
        if _has_tables(conn):
            row = conn.execute(f"SELECT {COLUMNS} FROM reembed_jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise JobNotFound(f"collection {col.info.name!r} has no job {job_id!r}", param="job_id")
    return _record(row)


def remaining(col: Collection, after_key: int) -> int:
    """Documents with a key above `after_key`: what a running job has left."""
    with col.store.reading() as conn:
        return int(conn.execute("SELECT COUNT(*) FROM documents WHERE key > ?", (after_key,)).fetchone()[0])


def start(col: Collection, job_id: str, model: str, pooling: str | None, dimension: int, drop: bool) -> JobRecord:
    """Record a new running job (writer thread): `JobConflict` if one runs, `VectorOnlyDocuments` if
    documents without text exist and `drop` is not set."""
    with _transaction(col) as conn:
        running = conn.execute("SELECT id FROM reembed_jobs WHERE state = ?", (RUNNING,)).fetchone()
        if running is not None:
            raise JobConflict(
                f"collection {col.info.name!r} is already being re-embedded (job {running[0]}); "
                f"wait for it or cancel it with DELETE /collections/{col.info.id}/jobs/{running[0]}"
            )
        vector_only = int(conn.execute("SELECT COUNT(*) FROM documents WHERE text IS NULL").fetchone()[0])
        if vector_only and not drop:
            raise VectorOnlyDocuments(
                f"{vector_only} document(s) in collection {col.info.name!r} were stored with a vector and no text, "
                'so they cannot be re-embedded; delete them, or send "drop_vector_only": true to drop them at the swap',
                param="drop_vector_only",
            )
        total = int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        conn.execute("DELETE FROM reembed_vectors")  # a crashed job's leftovers, if any
        conn.execute(
            f"INSERT INTO reembed_jobs ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, 0, 0, ?, ?, 0, 0, ?, NULL)",
            (job_id, model, pooling, dimension, drop, RUNNING, total, vector_only, time.time()),
        )
    return job(col, job_id)


def mark_resumed(col: Collection, record: JobRecord) -> JobRecord:
    """Record that this gateway takes the job up from `done` (writer thread)."""
    col.store.writer_connection().execute("UPDATE reembed_jobs SET resumed_from = done WHERE id = ?", (record.id,))
    return dataclasses.replace(record, resumed_from=record.done)


def pending(col: Collection, after_key: int, limit: int) -> Pending:
    """Up to `limit` documents with a key above `after_key`, in key order (reader)."""
    with col.store.reading() as conn:
        rows = conn.execute(
            "SELECT key, text FROM documents WHERE key > ? ORDER BY key LIMIT ?", (after_key, limit)
        ).fetchall()
    return Pending([int(r[0]) for r in rows], [r[1] for r in rows])


def store_batch(
    col: Collection, job_id: str, staged: VectorIndex, keys: list[int], vectors: np.ndarray, last_key: int
) -> None:
    """Commit a batch's new vectors with the job's progress, then add them to the new index (writer thread).

    `keys` may be fewer than the documents up to `last_key`: those without text are skipped (dropped later).
    """
    with _transaction(col) as conn:
        state = conn.execute("SELECT state FROM reembed_jobs WHERE id = ?", (job_id,)).fetchone()
        if state is None or state[0] != RUNNING:
            raise JobNotFound(f"job {job_id} is no longer running")
        conn.executemany(
            "INSERT OR REPLACE INTO reembed_vectors (key, vector) VALUES (?, ?)",
            zip(keys, (row.tobytes() for row in vectors), strict=True),
        )
        conn.execute(
            "UPDATE reembed_jobs SET last_key = ?, done = done + ? WHERE id = ?", (last_key, len(keys), job_id)
        )
    if keys:
        staged.add(np.array(keys, dtype=np.uint64), vectors)


def load_staged(col: Collection, record: JobRecord) -> VectorIndex:
    """The new index for a job being resumed: every new vector stored so far (reader)."""
    staged = VectorIndex(record.dimension, col.info.metric, col.info.index)
    with col.store.reading() as conn:
        cur = conn.execute("SELECT key, vector FROM reembed_vectors ORDER BY key")
        while rows := cur.fetchmany(4096):
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            staged.add(np.array([r[0] for r in rows], dtype=np.uint64), matrix)
    return staged


def finish(col: Collection, job_id: str, state: str, error: str | None = None) -> None:
    """End a running job as cancelled or failed, dropping its new vectors; the collection stays as it was."""
    with _transaction(col) as conn:
        conn.execute(
            "UPDATE reembed_jobs SET state = ?, error = ?, finished_at = ? WHERE id = ? AND state = ?",
            (state, error, time.time(), job_id, RUNNING),
        )
        conn.execute("DELETE FROM reembed_vectors")


def swap(col: Collection, record: JobRecord, staged: VectorIndex, pooling: str | None) -> bool:
    """Make the new model the collection's in one transaction, then in memory (writer thread).

    False if documents arrived after the job's last batch: the job embeds them and asks again. The
    description (model, dimension) and every vector change in one commit; the old index's snapshots are
    deleted before it (a crash in between rebuilds the old index from the database, which is unchanged).
    """
    if remaining(col, record.last_key):
        return False
    with col.store.reading() as conn:
        stale = [
            int(r[0])
            for r in conn.execute("SELECT key FROM reembed_vectors WHERE key NOT IN (SELECT key FROM documents)")
        ]
        textless = [int(r[0]) for r in conn.execute("SELECT key FROM documents WHERE text IS NULL")]
    staged.remove(stale)
    col.wait_for_snapshot()  # none starts meanwhile: only this (the writer) thread starts them
    discard_partial(col.folder)
    for snap in snapshots(col.folder):
        snap.path.unlink(missing_ok=True)
    info = dataclasses.replace(col.info, model=record.model, dimension=record.dimension, pooling=pooling)
    with _transaction(col) as conn:
        if textless:
            params = [(k,) for k in textless]
            conn.executemany("DELETE FROM documents WHERE key = ?", params)
            conn.executemany("INSERT INTO removed (key) VALUES (?)", params)
        conn.execute("DELETE FROM vectors")
        conn.execute(
            "INSERT INTO vectors (key, vector) SELECT r.key, r.vector FROM reembed_vectors AS r "
            "JOIN documents AS d ON d.key = r.key"
        )
        conn.execute("UPDATE documents SET generated = 1 WHERE generated = 0")
        conn.execute("DELETE FROM reembed_vectors")
        conn.execute("UPDATE meta SET value = ? WHERE name = 'info'", (info.to_json(),))
        conn.execute(
            "UPDATE reembed_jobs SET state = ?, dropped = ?, total = done, finished_at = ? WHERE id = ?",
            (DONE, len(textless), time.time(), record.id),
        )
    col.replace_index(info, staged)
    log.info(
        "collection_reembedded",
        collection=info.name,
        model=info.model,
        dimension=info.dimension,
        documents=len(staged),
        dropped=len(textless),
    )
    return True
