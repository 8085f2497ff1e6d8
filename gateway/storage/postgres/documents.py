"""One collection's documents in PostgreSQL: writes, reads, dense, keyword and hybrid search.

Every method blocks on the database and runs on a thread, as the embedded engine's do. The table keeps
each vector in f32 (`vector(d)`), the source of truth as SQLite is for the embedded engine; the HNSW
index holds the half-precision cast where the collection's index dtype is bf16/f16, as USearch does.

A write is one transaction: all of a batch or none of it, acknowledged only after COMMIT. Replacing a
document deletes its row and inserts a new one, so its key (and its place in insertion order) is new,
exactly as in the embedded engine.

Dense search asks the HNSW index with `hnsw.ef_search` set for this query and pgvector 0.8's iterative
scan (`relaxed_order`), which keeps walking the graph while the filter rejects candidates. When fewer
than k come back (a filter so selective that the scan's tuple budget ran out, or a tiny table), the
same query runs exactly over the documents that pass the filter (the GIN index finds them), so a
search returns k results whenever k documents match.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from gateway.storage.collection import DEPTH_PER_K, CollectionInfo, Hit, TextQuery
from gateway.storage.db import NewDocument, StoredDocument
from gateway.storage.filters import Where
from gateway.storage.fulltext import plain_words
from gateway.storage.fusion import KEYWORD, rrf
from gateway.storage.postgres.filters import pg_filter
from gateway.storage.postgres.schema import DISTANCE, HALF, index_expression, table_of

# Tuples an iterative index scan may visit before it gives up (pgvector's default is 20,000); past it
# the exact fallback answers, which for a filter that rare is the cheaper path anyway.
MAX_SCAN_TUPLES = 20_000
TEXT_SEARCH_CONFIG = "english"  # stemming like FTS5's porter tokenizer in the embedded engine


class PgDocuments:
    """The documents table of one collection, reached through a shared connection pool."""

    def __init__(self, pool: ConnectionPool[Any], info: CollectionInfo) -> None:
        self.pool = pool
        self.info = info
        self.table = table_of(info.id)
        self.table_name = f"akidb_docs_{info.id}"  # for catalogue lookups (pg_class); ids are `col_<hex>`
        self._distance = sql.SQL(DISTANCE[info.metric])
        # The ORDER BY the HNSW index answers: its own expression against the query cast the same way.
        indexed = index_expression(info.dimension, info.index.dtype)
        half = info.index.dtype in HALF
        cast = (
            sql.SQL("(%s::vector)::halfvec({})").format(sql.Literal(info.dimension)) if half else sql.SQL("%s::vector")
        )
        self._order = sql.SQL("{} {} {}").format(indexed, self._distance, cast)

    # -- writes -------------------------------------------------------------------------------
    def upsert(self, docs: Sequence[NewDocument]) -> None:
        """Insert or replace all documents in one transaction: all are stored, or none."""
        if len({d.doc_id for d in docs}) != len(docs):
            raise ValueError("a batch must not hold the same doc_id twice")
        now = time.time()
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(
                sql.SQL("DELETE FROM {t} WHERE doc_id = ANY(%s)").format(t=self.table), ([d.doc_id for d in docs],)
            )
            # Binary COPY: the rows stream in one command rather than one INSERT each.
            copy_sql = sql.SQL(
                "COPY {t} (doc_id, text, metadata, embedding, generated, updated_at) FROM STDIN WITH (FORMAT BINARY)"
            ).format(t=self.table)
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                copy.set_types(["text", "text", "jsonb", "vector", "bool", "float8"])
                for d in docs:
                    metadata = None if d.metadata is None else Jsonb(json.loads(d.metadata))
                    copy.write_row((d.doc_id, d.text, metadata, np.asarray(d.vector, np.float32), d.generated, now))

    def delete(self, doc_id: str) -> bool:
        with self.pool.connection() as conn:
            cur = conn.execute(sql.SQL("DELETE FROM {t} WHERE doc_id = %s").format(t=self.table), (doc_id,))
            return cur.rowcount > 0

    # -- reads --------------------------------------------------------------------------------
    def count(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {t}").format(t=self.table)).fetchone()
        return int(row[0]) if row else 0

    def get(self, doc_id: str, with_vector: bool) -> StoredDocument | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                sql.SQL("SELECT {cols} FROM {t} WHERE doc_id = %s").format(cols=_columns(with_vector), t=self.table),
                (doc_id,),
            ).fetchone()
        return None if row is None else _document(row)

    def page(self, after_key: int, limit: int, with_vector: bool) -> tuple[list[StoredDocument], int]:
        """Up to `limit` documents after `after_key` in insertion order, and the total count (one snapshot)."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            rows = conn.execute(
                sql.SQL("SELECT {cols} FROM {t} WHERE key > %s ORDER BY key LIMIT %s").format(
                    cols=_columns(with_vector), t=self.table
                ),
                (after_key, limit),
            ).fetchall()
            total = conn.execute(sql.SQL("SELECT count(*) FROM {t}").format(t=self.table)).fetchone()
        return [_document(r) for r in rows], int(total[0]) if total else 0

    def fetch(self, keys: Sequence[int], include: frozenset[str]) -> dict[int, StoredDocument]:
        if not keys:
            return {}
        with self.pool.connection() as conn:
            rows = conn.execute(
                sql.SQL("SELECT {cols} FROM {t} WHERE key = ANY(%s)").format(cols=_fields(include), t=self.table),
                (list(keys),),
            ).fetchall()
        return {int(r[0]): _document(r) for r in rows}

    # -- dense --------------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int, where: Where | None, include: frozenset[str]) -> list[Hit]:
        """The k nearest documents that pass the filter, best first, scored as the embedded engine scores."""
        ranked = self.dense_ranking(query, k, where)
        docs = self.fetch([key for key, _ in ranked], include)
        return [Hit(docs[key], score) for key, score in ranked if key in docs]

    def dense_ranking(self, query: np.ndarray, k: int, where: Where | None) -> list[tuple[int, float]]:
        """(key, score) of the k nearest that pass the filter, best first."""
        if k < 1:
            return []
        q = np.asarray(query, dtype=np.float32)
        flt, params = (sql.SQL("true"), []) if where is None else _where(where)
        approx = sql.SQL(
            "SELECT key, embedding {op} %s::vector AS d FROM {t} WHERE {flt} ORDER BY {order} LIMIT %s"
        ).format(op=self._distance, t=self.table, flt=flt, order=self._order)
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.max_scan_tuples', %s, true),"
                " set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                (str(max(self.info.index.expansion_search, k)), str(MAX_SCAN_TUPLES)),
            )
            rows = conn.execute(approx, [q, *params, q, k]).fetchall()
            if len(rows) < k:  # too few passed within the scan's budget: exact over the matches
                conn.execute("SET LOCAL enable_indexscan = off")
                exact = sql.SQL(
                    "SELECT key, embedding {op} %s::vector AS d FROM {t} WHERE {flt} ORDER BY d LIMIT %s"
                ).format(op=self._distance, t=self.table, flt=flt)
                rows = conn.execute(exact, [q, *params, k]).fetchall()
        # relaxed_order may return neighbours slightly out of order: order by the exact f32 distance
        ranked = sorted(((int(key), float(d)) for key, d in rows), key=lambda r: (r[1], r[0]))
        return [(key, self._score(d)) for key, d in ranked]

    def _score(self, distance: float) -> float:
        """pgvector distances as the API's scores: cosine similarity, inner product, or L2 distance."""
        if self.info.metric == "cosine":
            return 1.0 - distance
        if self.info.metric == "ip":
            return -distance  # <#> is the negative inner product
        return distance

    # -- keyword and hybrid -------------------------------------------------------------------
    def keyword_ranking(self, query: TextQuery, limit: int, where: Where | None) -> list[tuple[int, float]]:
        """(key, BM25 score) of the best `limit` documents for the text that pass the filter.

        BM25 (k1 1.2, b 0.75), as the embedded engine's FTS5 ranks, over PostgreSQL's own stemmed words:
        `ts_rank_cd` gives a rare word no more weight than a common one and ignores a document's length,
        which on `bench.hybrid` cost keyword search 0.42 of recall@10 against FTS5 (0.108 vs 0.528).
        The words' document frequencies and the mean length come from the table, or from a sample of its
        pages when it is large (`_stats_sample_percent`): IDF needs their ratios, not exact counts.
        """
        tsquery, qparams = _tsquery(query)
        if tsquery is None:
            return []
        flt, params = (sql.SQL("true"), []) if where is None else _where(where)
        config = sql.Literal(TEXT_SEARCH_CONFIG)
        stmt = sql.SQL(
            """WITH query AS (SELECT {tsquery} AS q),
            sample AS MATERIALIZED (SELECT tsv FROM {t} TABLESAMPLE SYSTEM (%s)),
            stats AS MATERIALIZED (SELECT greatest(count(*), 1)::float8 AS n,
                             greatest(coalesce(avg(length(tsv)), 1), 1)::float8 AS avgdl FROM sample),
            terms AS MATERIALIZED (
                SELECT lex, (SELECT count(*) FROM sample WHERE sample.tsv @@ quote_literal(lex)::tsquery) AS df
                FROM unnest(tsvector_to_array(to_tsvector({c}, %s))) AS lex
            ),
            candidates AS (SELECT key, tsv FROM {t}, query WHERE tsv @@ q AND {flt})
            SELECT c.key,
                   sum(ln(1 + (s.n - least(w.df, s.n) + 0.5) / (least(w.df, s.n) + 0.5))
                       * w.tf * 2.2 / (w.tf + 1.2 * (0.25 + 0.75 * length(c.tsv) / s.avgdl))) AS r
            FROM candidates c CROSS JOIN stats s,
                 LATERAL (SELECT t.df, coalesce(array_length(u.positions, 1), 1) AS tf
                          FROM unnest(c.tsv) AS u JOIN terms t ON t.lex = u.lexeme) AS w
            GROUP BY c.key ORDER BY r DESC, c.key LIMIT %s"""
        ).format(t=self.table, tsquery=tsquery, flt=flt, c=config)
        with self.pool.connection() as conn:
            percent = _stats_sample_percent(conn, self.table_name)
            rows = conn.execute(stmt, [*qparams, percent, query.text, *params, limit]).fetchall()
        return [(int(key), float(r)) for key, r in rows]

    def keyword_search(self, query: TextQuery, k: int, where: Where | None, include: frozenset[str]) -> list[Hit]:
        found = self.keyword_ranking(query, k, where)
        docs = self.fetch([key for key, _ in found], include)
        return [Hit(docs[key], score, {KEYWORD: rank}) for rank, (key, score) in enumerate(found, 1) if key in docs]

    def hybrid_search(
        self,
        vector: np.ndarray,
        query: TextQuery,
        k: int,
        where: Where | None,
        *,
        alpha: float,
        rrf_k: int,
        include: frozenset[str],
    ) -> list[Hit]:
        """Dense and keyword rankings (both filtered) fused by the embedded engine's RRF (`fusion.rrf`)."""
        keyword = self.keyword_ranking(query, DEPTH_PER_K * k, where)
        return self.fuse(vector, keyword, k, where, alpha=alpha, rrf_k=rrf_k, include=include)

    def fuse(
        self,
        vector: np.ndarray,
        ranking: list[tuple[int, float]],
        k: int,
        where: Where | None,
        *,
        alpha: float,
        rrf_k: int,
        include: frozenset[str],
    ) -> list[Hit]:
        """A keyword `ranking` fused with this table's dense ranking (both filtered) by RRF."""
        dense = self.dense_ranking(vector, DEPTH_PER_K * k, where)
        fused = rrf([key for key, _ in dense], [key for key, _ in ranking], rrf_k, alpha, k)
        docs = self.fetch([f.key for f in fused], include)
        return [Hit(docs[f.key], f.score, f.ranks) for f in fused if f.key in docs]


# Pages enough for ~20,000 rows when a table is larger: its words' frequencies and mean length, to within
# what ranking needs, without reading a large collection's every row for each keyword search.
STATS_SAMPLE_ROWS = 20_000


def _stats_sample_percent(conn: Any, table: str) -> float:
    """The share of `table`'s pages (TABLESAMPLE SYSTEM) that holds about STATS_SAMPLE_ROWS rows; 100 below."""
    row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (table,)).fetchone()
    estimate = float(row[0]) if row and row[0] is not None else -1.0
    if estimate <= STATS_SAMPLE_ROWS:  # -1: never analysed (a new table): read it all
        return 100.0
    return max(1.0, 100.0 * STATS_SAMPLE_ROWS / estimate)


def _where(where: Where) -> tuple[sql.Composable, list[Any]]:
    text, params = pg_filter(where)
    return sql.SQL(text), params


def _tsquery(query: TextQuery) -> tuple[sql.Composable | None, list[Any]]:
    """A plain query's words OR-ed (each through plainto_tsquery, so no word is read as an operator), or
    the web-search syntax (`"phrase"`, `or`, `-word`) where the client asked for query syntax."""
    config = sql.Literal(TEXT_SEARCH_CONFIG)
    if query.syntax != "plain":
        return sql.SQL("websearch_to_tsquery({c}, %s)").format(c=config), [query.text]
    words = plain_words(query.text)
    if not words:
        return None, []
    parts = sql.SQL(" || ").join(sql.SQL("plainto_tsquery({c}, %s)").format(c=config) for _ in words)
    return sql.SQL("({})").format(parts), list(words)


_BASE = "key, doc_id, text, metadata::text, NULL::real[], generated"


def _columns(with_vector: bool) -> sql.Composable:
    return sql.SQL(_BASE.replace("NULL::real[]", "embedding::real[]") if with_vector else _BASE)


def _fields(include: frozenset[str]) -> sql.Composable:
    return sql.SQL(
        ", ".join(
            (
                "key",
                "doc_id",
                "text" if "text" in include else "NULL::text",
                "metadata::text" if "metadata" in include else "NULL::text",
                "embedding::real[]" if "vector" in include else "NULL::real[]",
                "generated",
            )
        )
    )


def _document(row: tuple[Any, ...]) -> StoredDocument:
    key, doc_id, text, metadata, vector, generated = row
    blob = None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()
    return StoredDocument(int(key), doc_id, text, metadata, blob, bool(generated))
