"""Metadata filters: what each operator matches, evaluated by SQLite exactly as the store does."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from gateway.errors import from_storage
from gateway.storage.errors import InvalidFilter
from gateway.storage.filters import compile_filter

ROWS: dict[str, dict[str, Any] | None] = {
    "a": {"genre": "sci-fi", "year": 1999, "score": 4.5, "done": True, "tags": ["x"]},
    "b": {"genre": "drama", "year": 2005, "score": 3.0, "done": False},
    "c": {"genre": "sci-fi", "year": 2010, "done": None},
    "d": {"genre": "1", "year": "2010"},
    "e": {"genre": 1, "year": 1},
    "f": None,
    "g": {"my key": "spaced", "year": 2005.0},
}


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


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, set(ROWS)),
        ({}, set(ROWS)),
        ({"genre": "sci-fi"}, {"a", "c"}),
        ({"genre": {"$eq": "sci-fi"}, "year": {"$gte": 2000}}, {"c"}),
        ({"genre": {"$in": ["drama", "sci-fi"]}}, {"a", "b", "c"}),
        ({"year": {"$in": [2005, 1999]}}, {"a", "b", "g"}),  # 2005.0 equals 2005, as numbers
        ({"genre": 1}, {"e"}),  # a number never matches the string "1"
        ({"genre": "1"}, {"d"}),
        ({"done": True}, {"a"}),  # true never matches the number 1
        ({"done": False}, {"b"}),
        ({"done": None}, {"c"}),
        ({"done": {"$in": [True, None]}}, {"a", "c"}),
        ({"genre": {"$ne": "sci-fi"}}, {"b", "d", "e", "f", "g"}),  # a missing key is "not equal"
        ({"genre": {"$nin": ["sci-fi", "drama"]}}, {"d", "e", "f", "g"}),
        ({"score": {"$exists": True}}, {"a", "b"}),
        ({"year": {"$gt": 1999, "$lt": 2010}}, {"b", "g"}),
        ({"year": {"$lte": 1999}}, {"a", "e"}),
        ({"genre": {"$gt": "m"}}, {"a", "c"}),  # strings compare as strings, only with strings
        ({"$or": [{"genre": "drama"}, {"year": 2010}]}, {"b", "c"}),
        ({"$and": [{"genre": "sci-fi"}, {"$or": [{"done": True}, {"year": 2010}]}]}, {"a", "c"}),
        ({"my key": "spaced"}, {"g"}),
        ({"tags": {"$exists": True}}, {"a"}),
        ({"nothing": "here"}, set()),
    ],
)
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
