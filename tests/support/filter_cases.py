"""One table of metadata-filter cases, held against every storage engine's rendering of the filter tree."""

from __future__ import annotations

from typing import Any

ROWS: dict[str, dict[str, Any] | None] = {
    "a": {"genre": "sci-fi", "year": 1999, "score": 4.5, "done": True, "tags": ["x"]},
    "b": {"genre": "drama", "year": 2005, "score": 3.0, "done": False},
    "c": {"genre": "sci-fi", "year": 2010, "done": None},
    "d": {"genre": "1", "year": "2010"},
    "e": {"genre": 1, "year": 1},
    "f": None,
    "g": {"my key": "spaced", "year": 2005.0},
}

# (filter, the ids of ROWS it matches)
CASES: list[tuple[Any, set[str]]] = [
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
]
