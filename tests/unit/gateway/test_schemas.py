"""Bodies decoded into the API's Structs: vectors, document ids, query flags, and errors that name the field."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from gateway.api.schemas.common import decode, from_query
from gateway.api.schemas.documents import GetQuery, InsertBody, ListQuery
from gateway.api.schemas.search import SearchBody
from gateway.errors import InvalidInput, InvalidJson
from gateway.storage.errors import InvalidFilter


def insert(body: Any, limit: int = 1000) -> tuple[list[Any], bool]:
    return decode(orjson.dumps(body), InsertBody).to_inputs(limit)


def vector_of(value: Any) -> np.ndarray:
    (doc,), _ = insert({"vector": value})
    assert doc.vector is not None
    return doc.vector


def test_a_vector_becomes_float32() -> None:
    v = vector_of([1, 0.5, -2e-3])
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
        ([1e39], "beyond float32"),  # finite in JSON, infinite as float32
    ],
)
def test_bad_vectors_are_refused(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        vector_of(value)
    assert fragment in info.value.message
    assert info.value.param == "vector"


@pytest.mark.parametrize("raw", [b'{"vector": [1, NaN]}', b'{"vector": [Infinity]}'])
def test_nan_and_infinity_are_not_json(raw: bytes) -> None:
    with pytest.raises(InvalidJson):
        decode(raw, InsertBody)


def test_a_number_beyond_float64_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        decode(b'{"vector": [1, 1' + b"0" * 400 + b"]}", InsertBody)
    assert "beyond float32" in info.value.message and info.value.param == "vector"


def test_errors_in_a_batch_name_the_document() -> None:
    docs = [{"vector": [0.5] * 4} for _ in range(5)]
    docs[3]["vector"] = [0.5, True]
    with pytest.raises(InvalidInput) as info:
        insert({"documents": docs})
    assert info.value.message == "documents[3].vector must hold numbers only, found boolean"
    docs[3]["vector"] = [1e39, 0]
    with pytest.raises(InvalidInput) as info:
        insert({"documents": docs})
    assert info.value.message.startswith("documents[3].vector[0] is 1e+39: NaN, infinity")
    with pytest.raises(InvalidInput) as info:
        insert({"documents": [{"text": "ok"}, {"metadata": {}}]})
    assert info.value.message == "documents[1] needs text (to embed) or a vector"


def test_a_batch_takes_only_documents() -> None:
    with pytest.raises(InvalidInput) as info:
        insert({"documents": [{"text": "a"}], "text": "b"})
    assert "unknown field(s) text; allowed: documents" in info.value.message
    docs, batch = insert({"documents": [{"text": "a"}, {"id": "x", "vector": [1, 2]}, {"vector": [3]}]})
    assert batch and [d.doc_id for d in docs] == [None, "x", None]
    assert docs[0].vector is None and docs[2].vector is not None and docs[2].vector.tolist() == [3.0]


def test_metadata_must_be_storable() -> None:
    with pytest.raises(InvalidInput) as info:
        decode(b'{"text": "a", "metadata": {"n": 18446744073709551616}}', InsertBody).to_inputs(10)
    assert "64-bit" in info.value.message


@pytest.mark.parametrize("value", ["a", "doc-1", "ünïcode id", "x" * 256])
def test_good_ids(value: str) -> None:
    (doc,), _ = insert({"id": value, "text": "t"})
    assert doc.doc_id == value


@pytest.mark.parametrize("value", ["", "x" * 257, "a/b", "tab\there", 7, ["a"]])
def test_bad_ids(value: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        insert({"id": value, "text": "t"})
    assert info.value.message.startswith("id ")


def test_query_flags_and_ints() -> None:
    assert from_query({"include_vector": "true"}, GetQuery).include_vector is True
    assert from_query({}, GetQuery).include_vector is False
    assert from_query({"limit": "5"}, ListQuery).limit == 5
    for query in ({"include_vector": "yes"}, {"limit": "1001"}, {"limit": "x"}):
        with pytest.raises(InvalidInput) as info:
            from_query(query, ListQuery)
        assert info.value.message.startswith("query parameter ")
    with pytest.raises(InvalidInput, match="query parameter limit must be between 1 and 1000, got 0"):
        from_query({"limit": "0"}, ListQuery)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": "x", "k": 0}, "k must be between 1 and 1000, got 0"),
        ({"query": "x", "k": 2.5}, "k must be an integer, got number"),
        ({}, "give either query (a text to embed) or vector (numbers), got neither"),
        ({"query": "x", "vector": [1]}, "give either query (a text to embed) or vector (numbers), not both"),
        (
            {"query": "x", "include": ["everything"]},
            "include[0] must be one of text, metadata, vector, ranks, got 'everything'",
        ),
    ],
)
def test_search_bodies(body: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode(orjson.dumps(body), SearchBody).to_query()
    assert info.value.message == message


def batch(*members: Any, **extra: Any) -> list[Any]:
    return decode(orjson.dumps({"queries": list(members), **extra}), SearchBody).to_queries()


def test_a_batch_search_keeps_each_members_own_k_filter_and_include_in_order() -> None:
    queries = batch(
        {"query": "a"}, {"vector": [1, 2], "k": 3, "include": ["vector"]}, {"query": "b", "filter": {"g": 1}}
    )
    assert [q.text for q in queries] == ["a", None, "b"]
    assert [q.k for q in queries] == [10, 3, 10]
    assert queries[1].vector is not None and queries[1].vector.dtype == np.float32
    assert queries[1].include == frozenset({"vector"}) and queries[0].include == frozenset({"text", "metadata"})
    assert queries[0].flt is None and queries[2].flt is not None


BOTH = (
    "give either queries (a batch, each member with its own query or vector, k, filter and include) or a single search"
)
X = {"query": "x"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"queries": [X] * 101}, "queries holds 101 items, over the limit of 100"),
        ({"queries": []}, "queries must hold at least one search"),
        ({"queries": [X] * 3 + [{"query": "x", "k": 0}]}, "queries[3].k must be between 1 and 1000, got 0"),
        (
            {"queries": [X, {"query": "x", "top": 3}]},
            "queries[1] has unknown field(s) top; allowed: "
            "alpha, filter, include, k, keyword_syntax, mode, query, rerank, vector",
        ),
        ({"queries": [X, {}]}, "queries[1]: give either query (a text to embed) or vector (numbers), got neither"),
        ({"queries": [{"vector": [1, "a"]}]}, "queries[0].vector must hold numbers only, found string"),
        (
            {"queries": [{"vector": [1e39]}]},
            "queries[0].vector[0] is 1e+39: NaN, infinity and numbers beyond float32 are refused",
        ),
        ({"queries": [X], "query": "y"}, f"{BOTH}, not both: found query beside queries"),
        ({"queries": [X], "vector": [1], "filter": {"a": 1}}, f"{BOTH}, not both: found vector, filter beside queries"),
    ],
)
def test_refused_batch_searches_name_the_member(body: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode(orjson.dumps(body), SearchBody).to_queries()
    assert info.value.message == message


def test_a_bad_filter_in_a_batch_names_its_member() -> None:
    with pytest.raises(InvalidFilter) as info:
        batch({"query": "x"}, {"query": "y", "filter": "a=1"})
    assert info.value.message == "queries[1].filter must be a JSON object, got string"


def test_input_type_reaches_the_embed_request_from_both_embedding_bodies() -> None:
    from gateway.api.schemas.embed import EmbedBody
    from gateway.api.schemas.openai import parse

    assert decode(b'{"texts": ["a"]}', EmbedBody).to_request(10).input_type is None
    assert decode(b'{"texts": ["a"], "input_type": "query"}', EmbedBody).to_request(10).input_type == "query"
    assert parse(b'{"input": "a", "model": "m", "input_type": "document"}').to_request(10).input_type == "document"
    assert parse(b'{"input": "a", "model": "m"}').to_request(10).input_type is None
    with pytest.raises(InvalidInput, match=r"input_type must be one of query, document"):
        decode(b'{"texts": ["a"], "input_type": "passage"}', EmbedBody)
