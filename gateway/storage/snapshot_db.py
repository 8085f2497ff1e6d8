"""A collection snapshot's documents database, as either engine writes and reads it.

A snapshot carries one SQLite database in the embedded engine's schema (`db.SCHEMA`). The embedded engine
writes it by SQLite's online backup of its own database and restores by opening it; the PostgreSQL engine
writes its rows into a fresh one (`DatabaseWriter`) and restores by reading them back in batches (`rows`), in
insertion order, through its own tables. So one file format moves a collection between engines, and every
check `snapshot_trust` makes on an upload holds whichever engine restores it. SQLite is the container because
it is already the checked one: a hostile database is refused before any row is read.

An engine that writes rows also gives the snapshot an empty index (`empty_index`): an embedded restore then
builds its index from the database's vectors, exactly as a restart replays rows its index snapshot lacks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.storage.db import SCHEMA
from gateway.storage.engine import CollectionInfo
from gateway.storage.errors import SnapshotInvalid
from gateway.storage.index import VectorIndex

BATCH = 1000  # rows per read or write: bounds memory to a batch whatever the collection's size


@dataclass(frozen=True)
class Row:
    """One document as a snapshot holds it, whatever engine stored it."""

    doc_id: str
    text: str | None
    metadata: str | None  # JSON text of an object
    vector: bytes  # float32
    generated: bool
    updated_at: float


class DatabaseWriter:
    """A new snapshot database that rows are added to in insertion order (keys 1, 2, ... in that order)."""

    def __init__(self, path: Path, info: CollectionInfo) -> None:
        # A work file: a crash leaves it for the snapshots folder's sweep, so no journal is worth its writes.
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.executescript(SCHEMA)
        self.conn.execute("INSERT INTO meta (name, value) VALUES ('info', ?)", (info.to_json(),))
        self.count = 0

    def add(self, rows: Sequence[Row]) -> None:
        keyed = list(zip(range(self.count + 1, self.count + 1 + len(rows)), rows, strict=True))
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT INTO documents (key, doc_id, text, metadata, generated, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(k, r.doc_id, r.text, r.metadata, int(r.generated), r.updated_at) for k, r in keyed],
        )
        self.conn.executemany("INSERT INTO vectors (key, vector) VALUES (?, ?)", [(k, r.vector) for k, r in keyed])
        self.conn.execute("COMMIT")
        self.count += len(rows)

    def close(self) -> int:
        """Close the database; the number of documents it holds."""
        self.conn.close()
        return self.count


def empty_index(info: CollectionInfo) -> tuple[str, bytes]:
    """The index member of a snapshot written from rows: empty, as of key 0 (a restore replays every row)."""
    index = VectorIndex(info.dimension, info.metric, info.index)
    try:
        return "index-0-0.usearch", index.serialize()
    finally:
        index.close()


def count(path: Path) -> int:
    """The documents a checked snapshot database holds."""
    conn = _open(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
    finally:
        conn.close()


def rows(path: Path, batch: int = BATCH) -> Iterator[list[Row]]:
    """The documents of a checked snapshot database (`snapshot_trust.check_database`), in insertion order, a
    batch at a time. A value of a type AkiDB never stores is `SnapshotInvalid`: the file was altered."""
    conn = _open(path)
    try:
        after = 0
        while True:
            found = conn.execute(
                "SELECT d.key, d.doc_id, d.text, d.metadata, v.vector, d.generated, d.updated_at"
                " FROM documents AS d JOIN vectors AS v ON v.key = d.key WHERE d.key > ? ORDER BY d.key LIMIT ?",
                (after, batch),
            ).fetchall()
            if not found:
                return
            after = found[-1][0]
            yield [_row(r) for r in found]
    finally:
        conn.close()


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA trusted_schema=OFF")
    conn.execute("PRAGMA query_only=ON")
    return conn


def _row(row: tuple[Any, ...]) -> Row:
    key, doc_id, text, metadata, vector, generated, updated_at = row
    typed = (
        isinstance(doc_id, str)
        and isinstance(text, str | None)
        and isinstance(metadata, str | None)
        and isinstance(vector, bytes)
        and generated in (0, 1)
        and isinstance(updated_at, int | float)
    )
    if not typed:
        raise SnapshotInvalid(f"document at key {key} holds a value of a type AkiDB never stores: the file was altered")
    if metadata is not None:
        try:
            parsed = json.loads(metadata)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            raise SnapshotInvalid(f"document {doc_id!r} holds metadata that is not a JSON object: the file was altered")
    return Row(doc_id, text, metadata, vector, bool(generated), float(updated_at))
