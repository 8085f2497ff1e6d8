"""The PostgreSQL engine's schema: numbered migrations, applied once under an advisory lock.

Several gateways may start at once against one database; the transaction-scoped advisory lock makes
the first one migrate and the others wait and then find nothing to do. DDL is transactional in
PostgreSQL, so a migration cut short by a crash leaves no trace and runs again at the next start.

A collection's documents live in a table of their own, `akidb_docs_<collection id>`: pgvector indexes a
column of one fixed dimension, and each collection has its own dimension, metric and HNSW parameters,
which a table per collection carries without partition-by-collection tricks (`docs/architecture.md`).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from gateway.storage.errors import DataDirUnusable
from gateway.storage.index import IndexParams

# Any 64-bit constant of our own: the key of the migrations' advisory lock.
MIGRATION_LOCK = 0x616B6964625F6D67  # "akidb_mg"
# Notified after every catalogue change (create, delete, restore, a re-embedding's swap) so other
# gateways drop their view of the catalogue at once instead of at their next generation check.
CHANNEL = "akidb_catalogue"

MIGRATIONS: tuple[str, ...] = (
    # 1: the catalogue; `generation` moves on every change, so a gateway can tell its view is stale
    """
    CREATE TABLE akidb_collections (
        id text PRIMARY KEY,
        name text NOT NULL UNIQUE,
        info jsonb NOT NULL,
        created_at double precision NOT NULL
    );
    CREATE TABLE akidb_catalogue_generation (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        generation bigint NOT NULL
    );
    INSERT INTO akidb_catalogue_generation VALUES (true, 1);
    """,
    # 2: re-embedding jobs, leased to one gateway at a time (`gateway.storage.postgres.reembed`). The
    # partial unique index allows one running job per collection whichever gateway starts it; the new
    # generation's vectors are keyed (job, document key), so a document has at most one of them.
    """
    CREATE TABLE akidb_jobs (
        id text PRIMARY KEY,
        collection_id text NOT NULL REFERENCES akidb_collections (id) ON DELETE CASCADE,
        model text NOT NULL,
        pooling text,
        dimension integer NOT NULL,
        drop_vector_only boolean NOT NULL,
        state text NOT NULL,
        error text,
        last_key bigint NOT NULL DEFAULT 0,
        done bigint NOT NULL DEFAULT 0,
        total bigint NOT NULL,
        vector_only bigint NOT NULL,
        dropped bigint NOT NULL DEFAULT 0,
        resumed_from bigint NOT NULL DEFAULT 0,
        created_at double precision NOT NULL,
        finished_at double precision,
        holder text,
        lease_expires double precision,
        fence bigint NOT NULL DEFAULT 1
    );
    CREATE UNIQUE INDEX akidb_jobs_one_running ON akidb_jobs (collection_id) WHERE state = 'running';
    CREATE TABLE akidb_reembed_vectors (
        job_id text NOT NULL REFERENCES akidb_jobs (id) ON DELETE CASCADE,
        key bigint NOT NULL,
        embedding vector NOT NULL,
        PRIMARY KEY (job_id, key)
    );
    """,
)

HALF = ("bf16", "f16")  # index dtypes kept as pgvector's halfvec in the HNSW index
OPCLASS = {"cosine": "cosine", "ip": "ip", "l2": "l2"}
# pgvector's distance operators; the score the API shows is computed from the distance (`score_sql`).
DISTANCE = {"cosine": "<=>", "ip": "<#>", "l2": "<->"}


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the schema up to date (any number of gateways may call this at once); the version reached."""
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS akidb_schema (version integer NOT NULL)")
            row = conn.execute("SELECT max(version) FROM akidb_schema").fetchone()
            current = int(row[0]) if row and row[0] is not None else 0
            for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
                conn.execute(script)
                conn.execute("INSERT INTO akidb_schema (version) VALUES (%s)", (version,))
            return len(MIGRATIONS)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DataDirUnusable(
            f"the PostgreSQL role cannot create AkiDB's tables ({exc.diag.message_primary}); grant it CREATE on "
            "the database's schema (docs/scale-out.md lists the privileges AkiDB needs)"
        ) from None


def ensure_vector_extension(conn: psycopg.Connection[Any]) -> None:
    """pgvector must be installed in the database; create it if this role may, else say who must."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        # Gateways starting together race to create it: the loser's unique violation means it exists now.
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            return
        raise DataDirUnusable(
            f"the database has no pgvector extension and this role cannot create it ({exc}); run "
            "`CREATE EXTENSION vector;` once as a superuser or the database owner (pgvector 0.8 or newer)"
        ) from None


def table_of(collection_id: str) -> sql.Identifier:
    """The documents table of a collection (ids are ours, `col_<hex>`; quoted all the same)."""
    return sql.Identifier(f"akidb_docs_{collection_id}")


def index_expression(dimension: int, dtype: str) -> sql.Composable:
    """What the HNSW index orders by: the f32 column, or its half-precision cast where the embedded
    engine would keep bf16/f16 in its index (the table keeps f32, as SQLite does)."""
    if dtype in HALF:
        return sql.SQL("(embedding::halfvec({}))").format(sql.Literal(dimension))
    return sql.SQL("embedding")


def opclass(metric: str, dtype: str) -> sql.Composable:
    kind = "halfvec" if dtype in HALF else "vector"
    return sql.Identifier(f"{kind}_{OPCLASS[metric]}_ops")


def create_documents_table(
    conn: psycopg.Connection[Any],
    collection_id: str,
    dimension: int,
    metric: str,
    params: IndexParams,
    *,
    indexes: bool = True,
) -> None:
    """The table and (unless `indexes` is false: a restore builds them after its copy) its indexes; caller's
    transaction."""
    table = table_of(collection_id)
    conn.execute(
        sql.SQL(
            """CREATE TABLE {table} (
                key bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                doc_id text NOT NULL UNIQUE,
                text text,
                metadata jsonb,
                embedding vector({dim}) NOT NULL,
                generated boolean NOT NULL,
                updated_at double precision NOT NULL,
                tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(text, ''))) STORED
            )"""
        ).format(table=table, dim=sql.Literal(dimension))
    )
    if indexes:
        create_documents_indexes(conn, collection_id, dimension, metric, params)


def create_documents_indexes(
    conn: psycopg.Connection[Any], collection_id: str, dimension: int, metric: str, params: IndexParams
) -> None:
    """The table's HNSW, metadata (GIN) and full-text (GIN on the stored tsvector) indexes; caller's transaction."""
    table = table_of(collection_id)
    create_vector_index(conn, collection_id, dimension, metric, params)
    conn.execute(sql.SQL("CREATE INDEX ON {table} USING gin (metadata)").format(table=table))
    conn.execute(sql.SQL("CREATE INDEX ON {table} USING gin (tsv)").format(table=table))


def vector_index_name(collection_id: str) -> sql.Identifier:
    # Named (not left to PostgreSQL) so a re-embedding's swap can drop it and build the new one.
    return sql.Identifier(f"akidb_hnsw_{collection_id}")


def create_vector_index(
    conn: psycopg.Connection[Any], collection_id: str, dimension: int, metric: str, params: IndexParams
) -> None:
    """The HNSW index over the embedding column (caller's transaction)."""
    conn.execute(
        sql.SQL(
            "CREATE INDEX {name} ON {table} USING hnsw ({expr} {ops}) WITH (m = {m}, ef_construction = {ef})"
        ).format(
            name=vector_index_name(collection_id),
            table=table_of(collection_id),
            expr=index_expression(dimension, params.dtype),
            ops=opclass(metric, params.dtype),
            m=sql.Literal(params.connectivity),
            ef=sql.Literal(params.expansion_add),
        )
    )


def drop_vector_index(conn: psycopg.Connection[Any], collection_id: str) -> None:
    """Drop the HNSW index of a collection, whatever PostgreSQL named it when an older AkiDB created it."""
    table = f"akidb_docs_{collection_id}"
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE '%%USING hnsw%%'", (table,)
    ).fetchall()
    for (name,) in rows:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))


def drop_documents_table(conn: psycopg.Connection[Any], collection_id: str) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {table}").format(table=table_of(collection_id)))


def bump_generation(conn: psycopg.Connection[Any]) -> int:
    """Move the catalogue's generation on and tell listening gateways (both at the caller's commit)."""
    row = conn.execute(
        "UPDATE akidb_catalogue_generation SET generation = generation + 1 RETURNING generation"
    ).fetchone()
    conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(CHANNEL)))
    assert row is not None
    return int(row[0])
