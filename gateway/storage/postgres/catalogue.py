"""The PostgreSQL engine's catalogue: which collections exist, shared by every gateway on the database.

Creating a collection inserts its row and creates its table in one transaction, so two gateways that
create one name at once give one success and one `CollectionExists` (the name's unique constraint),
and a crash leaves either both or neither. Every change moves the catalogue's generation on and
NOTIFYs `akidb_catalogue` at commit, for gateways that cache the catalogue (`Catalogue.generation`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

from gateway.storage.collection import CollectionInfo
from gateway.storage.errors import CollectionExists, CollectionNotFound
from gateway.storage.postgres.documents import PgDocuments
from gateway.storage.postgres.schema import (
    bump_generation,
    create_documents_indexes,
    create_documents_table,
    drop_documents_table,
    ensure_vector_extension,
    migrate,
)

# Work that runs inside the transaction creating a collection (a restore's documents).
Fill = Callable[[psycopg.Connection[Any]], None]


def open_pool(dsn: str, *, size: int = 8, statement_timeout_ms: int = 30_000) -> ConnectionPool[Any]:
    """A pool whose connections speak pgvector's types and give up on a statement after the timeout."""

    def configure(conn: psycopg.Connection[Any]) -> None:
        register_vector(conn)
        conn.autocommit = True  # transactions are explicit (`conn.transaction()`)

    pool: ConnectionPool[Any] = ConnectionPool(
        dsn,
        min_size=1,
        max_size=size,
        kwargs={"options": f"-c statement_timeout={statement_timeout_ms}"},
        configure=configure,
        open=False,
        name="akidb",
    )
    pool.open(wait=True, timeout=30)
    return pool


def prepare(dsn: str) -> None:
    """pgvector present and the schema current: once per gateway start, before the pool is used."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_vector_extension(conn)
        migrate(conn)


class Catalogue:
    """Create, list, get and delete collections; each a `PgDocuments` over the shared pool."""

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def create(self, info: CollectionInfo, fill: Fill | None = None) -> PgDocuments:
        """Record the collection and make its table and indexes, atomically; `CollectionExists` if taken.

        `fill` (a restore's documents) runs in the same transaction: whatever it raises, nothing is created."""
        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute(
                    "INSERT INTO akidb_collections (id, name, info, created_at) VALUES (%s, %s, %s, %s)",
                    (info.id, info.name, json.dumps(asdict(info)), info.created_at),
                )
                create_documents_table(conn, info.id, info.dimension, info.metric, info.index, indexes=fill is None)
                if fill is not None:
                    fill(conn)
                    # Built once over the filled table: on 5,000 vectors, 8-10 s against 39-50 s for growing
                    # the HNSW graph row by row through COPY. One statement as long as the collection is large:
                    # an admin's restore, so without statement_timeout_ms (the rest of it ends at COMMIT).
                    conn.execute("SET LOCAL statement_timeout = 0")
                    create_documents_indexes(conn, info.id, info.dimension, info.metric, info.index)
                bump_generation(conn)
        except psycopg.errors.UniqueViolation:
            raise CollectionExists(f"collection {info.name!r} already exists", param="name") from None
        return PgDocuments(self.pool, info)

    def get(self, name: str) -> PgDocuments:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT info::text FROM akidb_collections WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {name!r} does not exist", param="collection")
        return PgDocuments(self.pool, CollectionInfo.from_json(row[0]))

    def list(self) -> list[CollectionInfo]:
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT info::text FROM akidb_collections ORDER BY name").fetchall()
        return [CollectionInfo.from_json(r[0]) for r in rows]

    def delete(self, name: str) -> CollectionInfo:
        """Drop the collection's row and table in one transaction; `CollectionNotFound` if there is none."""
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute("DELETE FROM akidb_collections WHERE name = %s RETURNING info::text", (name,)).fetchone()
            if row is None:
                raise CollectionNotFound(f"collection {name!r} does not exist", param="collection")
            info = CollectionInfo.from_json(row[0])
            drop_documents_table(conn, info.id)
            bump_generation(conn)
        return info

    def generation(self) -> int:
        """The catalogue's generation: it changes whenever any gateway changes the catalogue."""
        with self.pool.connection() as conn:
            row = conn.execute("SELECT generation FROM akidb_catalogue_generation").fetchone()
        return int(row[0]) if row else 0
