"""A collection's full-text index: SQLite FTS5 over the documents' text, in the same database file.

The index is an FTS5 *external-content* table (`content='documents'`): it holds only the inverted
index, and reads the text back from `documents` (no second copy of every text). Triggers on
`documents` write it, so every statement that inserts or deletes a document (an upsert, a delete,
anything later) changes the index in the same transaction: they commit together or not at all, and
a `kill -9` can never leave one ahead of the other. This is FTS5's own documented pattern; nothing
here tokenises or scores text by hand.

A database made before full-text search existed has documents and no index: `ensure` builds it once,
in one transaction with the table's creation, so a build cut short by a crash leaves no table and
simply runs again at the next open.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable

from gateway.storage.errors import KeywordSyntaxError
from gateway.storage.filters import Filter

TABLE = "documents_fts"
# porter: "packages" finds "package"; unicode61 folds case and (2) diacritics for every script.
TOKENIZER = "porter unicode61 remove_diacritics 2"
# One statement each: `executescript` would COMMIT first, and these must share the build's transaction.
SCHEMA = (
    f"CREATE VIRTUAL TABLE {TABLE} USING fts5(text, content='documents', content_rowid='key', tokenize='{TOKENIZER}')",
    f"""CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN
        INSERT INTO {TABLE} (rowid, text) VALUES (new.key, new.text);
    END""",
    f"""CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents BEGIN
        INSERT INTO {TABLE} ({TABLE}, rowid, text) VALUES ('delete', old.key, old.text);
    END""",
    f"""CREATE TRIGGER documents_fts_update AFTER UPDATE OF text ON documents BEGIN
        INSERT INTO {TABLE} ({TABLE}, rowid, text) VALUES ('delete', old.key, old.text);
        INSERT INTO {TABLE} (rowid, text) VALUES (new.key, new.text);
    END""",
)
BUILD_BATCH = 10_000  # documents indexed between two progress reports
SYNTAXES = ("plain", "fts5")
# What SQLite says about a MATCH expression it cannot parse (the query's fault, not the database's).
_QUERY_ERRORS = ("fts5:", "syntax error", "no such column", "unknown special query", "unterminated string")
# Runs of characters that are not separators: a plain query's words, whatever their script.
_TOKEN = re.compile(r"[^\s\x00]+")  # NUL too: SQLite would end the string there

# A plain query leaves out its words held by more than this share of the documents (and more than
# COMMON_MIN of them): FTS5 gives such words an IDF near zero, yet it scores every document holding
# them, which is most of a query's time. On bench/hybrid.py's task (20,000 packages, 300 development
# queries) every word gave recall@10 0.510 at a median 18 ms; leaving out words in over 10 % gave 0.527
# at 2.1 ms (20 %: 0.527 at 4.1 ms; 5 %: 0.520). Elasticsearch's old `cutoff_frequency`, without rescoring.
COMMON_SHARE = 0.1
COMMON_MIN = 1000
WORD_CACHE = 100_000  # words whose document counts a collection remembers

Progress = Callable[[int, int], None]  # (documents indexed so far, total)


def ensure(conn: sqlite3.Connection, progress: Progress | None = None) -> int | None:
    """Create the full-text index if the database lacks it, indexing every stored document.

    Returns how many documents were indexed, or None when the index already existed. Runs in one
    transaction (the writer's connection, no transaction open): all of it commits, or none.
    """
    if exists(conn):
        return None
    conn.execute("BEGIN IMMEDIATE")
    try:
        if exists(conn):  # another connection built it meanwhile
            conn.execute("ROLLBACK")
            return None
        for statement in SCHEMA:
            conn.execute(statement)
        done = _fill(conn, progress)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return done


def exists(conn: sqlite3.Connection) -> bool:
    """Whether the database has its full-text index (a read)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
    return row is not None


def _fill(conn: sqlite3.Connection, progress: Progress | None) -> int:
    """Index the documents already stored, in key order and in batches, reporting progress after each."""
    total = int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
    done, last = 0, 0
    while True:
        row = conn.execute(
            "SELECT COUNT(*), MAX(key) FROM (SELECT key FROM documents WHERE key > ? ORDER BY key LIMIT ?)",
            (last, BUILD_BATCH),
        ).fetchone()
        if not row[0]:
            return done
        conn.execute(
            f"INSERT INTO {TABLE} (rowid, text) SELECT key, text FROM documents WHERE key > ? AND key <= ?",
            (last, row[1]),
        )
        done, last = done + int(row[0]), int(row[1])
        if progress is not None:
            progress(done, total)


def plain_words(text: str) -> list[str]:
    """A plain query's words: runs of non-space characters, each once, in order."""
    return list(dict.fromkeys(_TOKEN.findall(text)))


def quoted(words: list[str]) -> str:
    """Words as FTS5 strings (quotes doubled) joined by OR: quotes, dashes, `AND`, `*` or emoji are
    searched as text, never read as operators; BM25 ranks documents holding more of the rarer words first."""
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def match_expression(text: str, syntax: str) -> str:
    """The FTS5 MATCH expression for a query: `plain` words quoted (`quoted`), or `fts5` syntax as it is."""
    return text if syntax == "fts5" else quoted(plain_words(text))


class WordCounts:
    """How many documents hold each word, by FTS5's own tokenising (a MATCH on the word alone), cached.

    Used only to leave common words out of plain queries, so counts need not be exact: the cache is
    dropped when the collection's size has moved by a tenth since it began, or when it is full.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._total = 0

    def counts(self, conn: sqlite3.Connection, words: list[str], total: int) -> dict[str, int]:
        """How many documents hold each word; the ones not cached are counted in one statement (each
        statement hands the GIL back and forth, which costs milliseconds on a busy machine)."""
        with self._lock:
            if abs(total - self._total) * 10 > self._total or len(self._counts) >= WORD_CACHE:
                self._counts, self._total = {}, total
            known = {w: self._counts[w] for w in words if w in self._counts}
        missing = [w for w in words if w not in known]
        if missing:
            rows = conn.execute(
                f"SELECT (SELECT COUNT(*) FROM {TABLE} WHERE {TABLE} MATCH w.value) FROM json_each(?) AS w",
                (json.dumps([quoted([w]) for w in missing]),),
            ).fetchall()
            found = {w: int(row[0]) for w, row in zip(missing, rows, strict=True)}
            with self._lock:
                self._counts.update(found)
            known.update(found)
        return known


def plain_expression(conn: sqlite3.Connection, text: str, counts: WordCounts, total: int) -> str:
    """A plain query's MATCH expression without its common words (`COMMON_SHARE`); all of them if every
    word is common, so a query of only common words still finds what holds them."""
    words = plain_words(text)
    limit = max(COMMON_SHARE * total, COMMON_MIN)
    held = counts.counts(conn, words, total)
    rare = [w for w in words if held[w] <= limit]
    return quoted(rare or words)


def search(
    conn: sqlite3.Connection, expression: str, limit: int, flt: Filter | None, *, user_syntax: bool = False
) -> list[tuple[int, float]]:
    """(key, BM25 score) of the best `limit` documents matching the expression and the filter, best first.

    FTS5's `bm25()` is lower-is-better; the score here is its negation, so higher is better as for
    cosine. The filter is in the same WHERE, so `limit` come back whenever that many match both.
    `user_syntax`: the expression is the client's FTS5 syntax, so an error parsing it is theirs
    (`KeywordSyntaxError`); a plain query's expression cannot fail to parse, and an error is a bug.
    """
    if not expression:
        return []
    # FTS5 refuses a table alias in MATCH and bm25(), hence the full table name.
    if flt is None:
        sql = f"SELECT rowid, -bm25({TABLE}) FROM {TABLE} WHERE {TABLE} MATCH ? ORDER BY bm25({TABLE}) LIMIT ?"
        params: tuple[object, ...] = (expression, limit)
    else:
        sql = (
            f"SELECT {TABLE}.rowid, -bm25({TABLE}) FROM {TABLE} JOIN documents AS d ON d.key = {TABLE}.rowid"
            f" WHERE {TABLE} MATCH ? AND {flt.sql} ORDER BY bm25({TABLE}) LIMIT ?"
        )
        params = (expression, *flt.params, limit)
    try:
        rows = conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if not user_syntax or not any(marker in str(exc) for marker in _QUERY_ERRORS):
            raise
        raise KeywordSyntaxError(
            f"query is not valid FTS5 syntax ({exc}); fix it, or leave keyword_syntax out to search the words "
            "as plain text",
            param="query",
        ) from None
    return [(int(key), float(score)) for key, score in rows]
