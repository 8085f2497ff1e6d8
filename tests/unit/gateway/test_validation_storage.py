"""Vectors, document ids and query flags from untrusted JSON."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gateway.errors import InvalidInput
from gateway.validation import query_bool, query_int, record_id, vector_value


def test_a_vector_becomes_float32() -> None:
    v = vector_value([1, 0.5, -2e-3], "vector")
    assert v.dtype == np.float32
    np.testing.assert_allclose(v, [1, 0.5, -2e-3], rtol=1e-6)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([], "non-empty array"),
        ("1,2", "non-empty array"),
        ({"0": 1}, "non-empty array"),
        ([1, True], "numbers only, found boolean"),
        ([1, "2"], "numbers only"),
        ([1, None], "numbers only"),
        ([[1, 2], [3, 4]], "numbers only, found array"),
        ([1, float("nan")], "NaN"),
        ([float("inf")], "NaN, infinity"),
        ([1e39], "beyond float32"),  # finite in JSON, infinite as float32
        ([10**400], "beyond float32"),
    ],
)
def test_bad_vectors_are_refused(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        vector_value(value, "vector")
    assert fragment in info.value.message
    assert info.value.param == "vector"


@pytest.mark.parametrize("value", ["a", "doc-1", "ünïcode id", "x" * 256])
def test_good_ids(value: str) -> None:
    assert record_id(value, "id") == value


@pytest.mark.parametrize("value", ["", "x" * 257, "a/b", "tab\there", 7, None, ["a"]])
def test_bad_ids(value: Any) -> None:
    with pytest.raises(InvalidInput):
        record_id(value, "id")


def test_query_flags_and_ints() -> None:
    assert query_bool({"v": "true"}, "v", False) is True
    assert query_bool({}, "v", True) is True
    assert query_int({"n": "5"}, "n", 1, 1, 10) == 5
    with pytest.raises(InvalidInput):
        query_bool({"v": "yes"}, "v", False)
    with pytest.raises(InvalidInput):
        query_int({"n": "11"}, "n", 1, 1, 10)
    with pytest.raises(InvalidInput):
        query_int({"n": "x"}, "n", 1, 1, 10)
