"""The full-text index on an in-memory SQLite: hostile plain text never breaks the query; FTS5
syntax errors are `KeywordSyntaxError`; the filter sits in the same WHERE; an old database gets its
index built, in one transaction."""

from __future__ import annotations

import json
import sqlite3

import pytest

from gateway.storage import fulltext
from gateway.storage.db import SCHEMA
from gateway.storage.errors import KeywordSyntaxError
from gateway.storage.filters import compile_filter

HOSTILE = [
    'say "hello',
    '"unbalanced',
    "well-known - dash -- AND OR NOT",
    "AND",
    "OR OR",
    "NOT",
    "*",
    "wild*",
    "^start",
    "col:umn text:foo",
    "NEAR(a b)",
    "(paren",
    "a + b",
    "🚀 rocket 👩‍💻",
    "'single' quote",
    "   ",
    "",
    "\\ back\\slash",
    "ünïcödé straße",
    "nul\x00byte",
]


def db(*texts: str, metadata: list[dict] | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(SCHEMA)
    fulltext.ensure(conn)
    for i, text in enumerate(texts, start=1):
        meta = json.dumps(metadata[i - 1]) if metadata else None
        conn.execute(
            "INSERT INTO documents (key, doc_id, text, metadata, generated, updated_at) VALUES (?, ?, ?, ?, 0, 0)",
            (i, f"d{i}", text, meta),
        )
    return conn


def keys(conn: sqlite3.Connection, query: str, syntax: str = "plain", flt: dict | None = None) -> list[int]:
    expression = fulltext.match_expression(query, syntax)
    found = fulltext.search(conn, expression, 10, compile_filter(flt), user_syntax=syntax == "fts5")
    return [key for key, _ in found]


@pytest.mark.parametrize("query", HOSTILE)
def test_plain_text_of_any_kind_is_a_query_never_an_error(query: str) -> None:
    conn = db("hello world", "a well-known dash", "rocket science", "start here", "strasse unicode")
    keys(conn, query)  # no exception: every word is an FTS5 string


@pytest.mark.parametrize(
    ("query", "expression"),
    [
        ("hello world", '"hello" OR "world"'),
        ('say "hi"', '"say" OR """hi"""'),
        ("AND - *", '"AND" OR "-" OR "*"'),
        ("a a b", '"a" OR "b"'),
        ("  ", ""),
    ],
)
def test_plain_words_become_quoted_strings_joined_by_or(query: str, expression: str) -> None:
    assert fulltext.match_expression(query, "plain") == expression


def test_plain_words_find_what_they_say() -> None:
    conn = db("the quick brown fox", "a well-known dash", "rocket 🚀 launch", "AND gate logic")
    assert keys(conn, "well-known") == [2]
    assert keys(conn, "AND") == [4]  # a word, not an operator
    assert keys(conn, "🚀 rocket") == [3]
    assert keys(conn, "foxes") == [1]  # porter stemming
    assert keys(conn, "QUICK") == [1]
    assert keys(conn, "nothing matches") == []


def test_more_matching_words_rank_first_and_scores_are_higher_is_better() -> None:
    conn = db("apple", "apple banana", "apple banana cherry", "durian")
    found = fulltext.search(conn, fulltext.match_expression("apple banana cherry", "plain"), 10, None)
    assert [key for key, _ in found] == [3, 2, 1]
    scores = [score for _, score in found]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0


def test_fts5_syntax_passes_through() -> None:
    conn = db("alpha beta", "alpha gamma", "beta gamma")
    assert sorted(keys(conn, "alpha AND beta", "fts5")) == [1]
    assert sorted(keys(conn, "alpha NOT beta", "fts5")) == [2]
    assert sorted(keys(conn, '"beta gamma"', "fts5")) == [3]
    assert sorted(keys(conn, "gam*", "fts5")) == [2, 3]


@pytest.mark.parametrize("query", ["AND", "alpha AND", '"unbalanced', "(alpha", "nocolumn:alpha", "alpha NEAR("])
def test_fts5_syntax_errors_are_keyword_syntax_errors(query: str) -> None:
    conn = db("alpha beta")
    with pytest.raises(KeywordSyntaxError) as info:
        keys(conn, query, "fts5")
    assert "FTS5 syntax" in info.value.message and info.value.param == "query"


def test_the_filter_applies_inside_the_keyword_query() -> None:
    # 30 documents mention "common"; only the odd ones pass: k = 10 still come back, all odd.
    texts = [f"common word {i}" for i in range(30)]
    conn = db(*texts, metadata=[{"odd": i % 2} for i in range(30)])
    found = keys(conn, "common", flt={"odd": 1})
    assert len(found) == 10 and all((k - 1) % 2 == 1 for k in found)
    assert keys(conn, "common", flt={"odd": 5}) == []


def test_deletes_and_replacements_follow_the_documents() -> None:
    conn = db("old words here", "other text")
    conn.execute("DELETE FROM documents WHERE key = 1")
    assert keys(conn, "old") == []
    conn.execute("UPDATE documents SET text = 'fresh words' WHERE key = 2")
    assert keys(conn, "fresh") == [2] and keys(conn, "other") == []
    conn.execute("INSERT INTO documents_fts (documents_fts) VALUES ('integrity-check')")  # raises if out of step


def test_an_old_database_gets_its_index_once_with_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fulltext, "BUILD_BATCH", 4)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(SCHEMA)
    for i in range(1, 11):
        conn.execute(
            "INSERT INTO documents (key, doc_id, text, generated, updated_at) VALUES (?, ?, ?, 0, 0)",
            (i, f"d{i}", f"word{i} shared" if i != 5 else None),
        )
    seen: list[tuple[int, int]] = []
    assert fulltext.ensure(conn, lambda done, total: seen.append((done, total))) == 10
    assert seen == [(4, 10), (8, 10), (10, 10)]
    assert len(keys(conn, "shared")) == 9 and keys(conn, "word7") == [7]
    assert fulltext.ensure(conn) is None  # once
    conn.execute("INSERT INTO documents_fts (documents_fts) VALUES ('integrity-check')")


def test_a_build_cut_short_leaves_no_index_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO documents (key, doc_id, text, generated, updated_at) VALUES (1, 'd1', 'x', 0, 0)")

    def crash(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fulltext.ensure(conn, crash)
    assert not conn.in_transaction
    assert conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'documents_fts%'").fetchall() == []
    assert fulltext.ensure(conn) == 1


def test_plain_queries_leave_out_words_most_documents_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fulltext, "COMMON_MIN", 2)
    texts = [f"the common filler {i}" for i in range(17)] + ["the zebra", "the okapi", "unrelated"]
    conn = db(*texts)
    counts = fulltext.WordCounts()
    # "the" (19 of 20) and "common" (17) are over 10 % and over 2 documents; "zebra" and "okapi" are not.
    assert fulltext.plain_expression(conn, "the common zebra okapi", counts, 20) == '"zebra" OR "okapi"'
    assert fulltext.plain_expression(conn, "the common", counts, 20) == '"the" OR "common"'  # all common: all kept
    found = fulltext.search(conn, fulltext.plain_expression(conn, "the zebra", counts, 20), 10, None)
    assert [key for key, _ in found] == [18]


def test_word_counts_are_cached_until_the_collection_grows_by_a_tenth() -> None:
    conn = db("apple", "apple pie")
    counts = fulltext.WordCounts()
    assert counts.counts(conn, ["apple", "pie", "none", '"odd'], 2) == {"apple": 2, "pie": 1, "none": 0, '"odd': 0}
    conn.execute("INSERT INTO documents (key, doc_id, text, generated, updated_at) VALUES (3, 'd3', 'apple', 0, 0)")
    assert counts.counts(conn, ["apple"], 2) == {"apple": 2}  # cached: the size it was told has not moved
    assert counts.counts(conn, ["apple"], 3) == {"apple": 3}  # a third more documents: counted again
