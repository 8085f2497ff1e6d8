"""Collection snapshots on the PostgreSQL engine: a table's rows out to a snapshot database, and back in.

The file is the embedded engine's format (`gateway.storage.snapshot_db`), so a snapshot moves a collection
between engines either way. Both directions stream a batch at a time, so memory holds one batch of vectors
whatever the collection's size: out through a server-side cursor in one REPEATABLE READ transaction (a
consistent copy while writes go on), in through binary COPY inside the transaction that creates the collection
(`Catalogue.create`, which builds the table's indexes once the rows are in), so a restore is all or nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from gateway.storage.engine import CollectionInfo
from gateway.storage.errors import SnapshotInvalid
from gateway.storage.postgres.schema import table_of
from gateway.storage.snapshot_db import BATCH, DatabaseWriter, Row, rows


def export(pool: ConnectionPool[Any], info: CollectionInfo, target: Path, batch: int = BATCH) -> int:
    """Write the collection's documents, in insertion order, into a new snapshot database; their count."""
    writer = DatabaseWriter(target, info)
    try:
        with pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # Binary: a vector arrives as its float32 bytes, not as text to parse (several times slower).
            with conn.cursor(name="akidb_snapshot", binary=True) as cur:
                cur.execute(
                    sql.SQL(
                        "SELECT doc_id, text, metadata::text, embedding, generated, updated_at FROM {t} ORDER BY key"
                    ).format(t=table_of(info.id))
                )
                while found := cur.fetchmany(batch):
                    writer.add([_row(r) for r in found])
    finally:
        documents = writer.close()
    return documents


def _row(row: tuple[Any, ...]) -> Row:
    doc_id, text, metadata, embedding, generated, updated_at = row
    vector = np.asarray(embedding.to_numpy(), dtype=np.float32).tobytes()  # pgvector's `Vector`
    return Row(doc_id, text, metadata, vector, bool(generated), float(updated_at))


def copy_in(conn: psycopg.Connection[Any], info: CollectionInfo, database: Path, documents: int) -> None:
    """Add a checked snapshot database's documents to the collection's new table, in its insertion order (the
    caller's transaction). `SnapshotInvalid` unless every one of the manifest's `documents` arrived."""
    statement = sql.SQL(
        "COPY {t} (doc_id, text, metadata, embedding, generated, updated_at) FROM STDIN WITH (FORMAT BINARY)"
    ).format(t=table_of(info.id))
    copied = 0
    for batch in rows(database):
        with conn.cursor() as cur, cur.copy(statement) as copy:
            copy.set_types(["text", "text", "jsonb", "vector", "bool", "float8"])
            for r in batch:
                metadata = None if r.metadata is None else Jsonb(json.loads(r.metadata))
                vector = np.frombuffer(r.vector, dtype=np.float32)
                copy.write_row((r.doc_id, r.text, metadata, vector, r.generated, r.updated_at))
        copied += len(batch)
    if copied != documents:  # a document without its vector row: the JOIN in `rows` passed it over
        raise SnapshotInvalid(
            f"the snapshot's database holds {copied} documents with vectors, the manifest says {documents}: "
            "the file was altered"
        )
