"""Metadata filters: what each operator matches, evaluated by SQLite exactly as the embedded store does.

The same cases run against PostgreSQL in tests/integration/test_postgres_filters.py."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from gateway.errors import from_storage
from gateway.storage.errors import InvalidFilter
from gateway.storage.filters import compile_filter
from tests.support.filter_cases import CASES, ROWS


def matches(spec: Any) -> set[str]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE documents (doc_id TEXT, metadata TEXT)")
    conn.executemany(
        "INSERT INTO documents VALUES (?, ?)", [(k, None if v is None else json.dumps(v)) for k, v in ROWS.items()]
    )
    flt = compile_filter(spec)
    if flt is None:
        return set(ROWS)
    return {r[0] for r in conn.execute(f"SELECT doc_id FROM documents WHERE {flt.sql}", flt.params)}


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_filter_matches(spec: Any, expected: set[str]) -> None:
    assert matches(spec) == expected


def test_a_long_in_list_compiles_to_few_terms() -> None:
    flt = compile_filter({"year": {"$in": list(range(1000))}})
    assert flt is not None
    assert flt.sql.count(" OR ") == 0  # one IN (...) per JSON type, not a chain of ORs
    assert matches({"year": {"$in": list(range(1990, 2006))}}) == {"a", "b", "g"}


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("genre", "must be a JSON object"),
        ([{"genre": "x"}], "must be a JSON object"),
        ({"genre": ["a", "b"]}, "did you mean $in"),
        ({"genre": {"x": 1}}, "unknown operator"),
        ({"genre": {}}, "empty object"),
        ({"$nor": []}, "unknown operator"),
        ({"genre": {"$in": "sci-fi"}}, "non-empty array"),
        ({"genre": {"$in": []}}, "non-empty array"),
        ({"genre": {"$in": [["nested"]]}}, "only strings, numbers"),
        ({"genre": {"$in": list(range(2000))}}, "over the limit"),
        ({"year": {"$gt": True}}, "number or a string"),
        ({"year": {"$gt": None}}, "number or a string"),
        ({"year": {"$exists": 1}}, "true or false"),
        ({"$or": {"a": 1}}, "non-empty array"),
        ({"$or": ["a"]}, "must be a filter object"),
        ({'bad"key': 1}, "quote or backslash"),
        ({"": 1}, "non-empty"),
        ({"year": 2**70}, "64-bit"),
        (
            {
                "$and": [
                    {
                        "$and": [
                            {"$and": [{"$and": [{"$and": [{"$and": [{"$and": [{"$and": [{"$and": [{"a": 1}]}]}]}]}]}]}]}
                        ]
                    }
                ]
            },
            "deeper",
        ),
    ],
)
def test_malformed_filters_are_invalid_filter_errors(spec: Any, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        compile_filter(spec)
    assert fragment in info.value.message
    api = from_storage(info.value)
    assert api is not None and api.http_status == 400 and api.code == "invalid_filter"
