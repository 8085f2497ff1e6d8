"""Metadata filters on PostgreSQL: the same case table as SQLite's (tests/support/filter_cases.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from gateway.storage.filters import parse_filter
from gateway.storage.postgres.filters import pg_filter
from tests.support.filter_cases import CASES, ROWS
from tests.support.postgres import start_postgres


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[psycopg.Connection[Any]]:
    folder: Path = tmp_path_factory.mktemp("pg")
    for dsn in start_postgres(folder):
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE TABLE documents (doc_id text PRIMARY KEY, metadata jsonb)")
            c.execute("CREATE INDEX ON documents USING gin (metadata)")
            with c.cursor() as cur:
                cur.executemany(
                    "INSERT INTO documents VALUES (%s, %s)",
                    [(k, None if v is None else Jsonb(v)) for k, v in ROWS.items()],
                )
            yield c


def matches(conn: psycopg.Connection[Any], spec: Any) -> set[str]:
    tree = parse_filter(spec)
    if tree is None:
        return set(ROWS)
    sql, params = pg_filter(tree)
    return {r[0] for r in conn.execute(f"SELECT doc_id FROM documents WHERE {sql}", params)}


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_filter_matches_as_on_sqlite(conn: psycopg.Connection[Any], spec: Any, expected: set[str]) -> None:
    assert matches(conn, spec) == expected


def test_a_long_in_list_is_one_parameter(conn: psycopg.Connection[Any]) -> None:
    tree = parse_filter({"year": {"$in": list(range(1000))}})
    assert tree is not None
    sql, params = pg_filter(tree)
    assert sql.count("%s") == 2 and len(params[1]) == 1000
    assert matches(conn, {"year": {"$in": list(range(1990, 2006))}}) == {"a", "b", "g"}


def test_strings_compare_by_code_point(conn: psycopg.Connection[Any]) -> None:
    # "Z" < "a" < "é" in code-point order; a locale collation would put "é" before "z" or fold case.
    conn.execute(
        "INSERT INTO documents VALUES ('u1', %s), ('u2', %s), ('u3', %s)",
        [Jsonb({"w": "Zed"}), Jsonb({"w": "apple"}), Jsonb({"w": "élan"})],
    )
    try:
        assert matches(conn, {"w": {"$gt": "zz"}}) == {"u3"}
        assert matches(conn, {"w": {"$lt": "a"}}) == {"u1"}
    finally:
        conn.execute("DELETE FROM documents WHERE doc_id LIKE 'u%'")
