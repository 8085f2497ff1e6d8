"""Keyword and hybrid search on a real collection (SQLite + USearch on disk, no worker): the full-text
index follows upserts and deletes, is built for a database that predates it, and fuses with the
vector index."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import structlog

from gateway.storage.collection import Collection, TextQuery
from gateway.storage.db import DB_FILE, NewDocument
from gateway.storage.filters import compile_filter
from tests.integration.test_collection_store import make, reopen, unit

INCLUDE = frozenset(("text", "metadata"))


def doc(doc_id: str, text: str | None, seed: int, **meta: object) -> NewDocument:
    return NewDocument(doc_id, text, json.dumps(meta) if meta else None, unit(seed), False)


def keyword(col: Collection, text: str, k: int = 10, flt: dict | None = None) -> list[str]:
    return [h.doc.doc_id for h in col.keyword_search(TextQuery(text), k, compile_filter(flt), INCLUDE)]


def hybrid(col: Collection, vector: np.ndarray, text: str, k: int = 10, alpha: float = 0.5, flt: dict | None = None):
    return col.hybrid_search(
        vector, TextQuery(text), k, compile_filter(flt), alpha=alpha, rrf_k=60, max_candidates=50, include=INCLUDE
    )


def integrity(folder: Path) -> None:
    """FTS5's own check that the index holds exactly the documents' text (raises if not)."""
    conn = sqlite3.connect(folder / DB_FILE)
    try:
        conn.execute("INSERT INTO documents_fts (documents_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        conn.close()


def test_upserts_replacements_and_deletes_keep_the_text_index_in_step(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert([doc("a", "red apples", 1), doc("b", "green pears", 2), doc("v", None, 3)])
    assert keyword(col, "apples") == ["a"]
    col.upsert([doc("a", "yellow bananas", 4)])  # replaced: the old words are gone
    assert keyword(col, "apples") == [] and keyword(col, "bananas") == ["a"]
    assert col.delete("b")
    assert keyword(col, "pears") == []
    integrity(col.folder)
    col.close(save=True)
    again = reopen(tmp_path / "c")
    assert keyword(again, "bananas") == ["a"]
    integrity(again.folder)
    again.close(save=False)


def test_keyword_search_filters_in_the_query_and_returns_k(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert([doc(f"d{i}", f"shared word number{i}", i, odd=i % 2) for i in range(40)])
    found = keyword(col, "shared", k=10, flt={"odd": 1})
    assert len(found) == 10 and all(int(d[1:]) % 2 == 1 for d in found)
    hits = col.keyword_search(TextQuery("number7 shared"), 3, None, INCLUDE)
    assert hits[0].doc.doc_id == "d7" and hits[0].ranks == {"keyword": 1}
    assert hits[0].score > hits[1].score > 0
    col.close(save=False)


def test_hybrid_fuses_both_rankings_with_ranks(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert([doc(f"d{i}", f"filler text {i}", i) for i in range(50)])
    # "target" is the nearest vector to the query and holds no query word; "words" holds the word only.
    query = unit(1000)
    col.upsert([NewDocument("target", "nothing relevant", None, query, False), doc("words", "zebra crossing", 2000)])
    hits = hybrid(col, query, "zebra", k=5)
    ids = [h.doc.doc_id for h in hits]
    assert set(ids[:2]) == {"target", "words"}
    by_id = {h.doc.doc_id: h for h in hits}
    assert by_id["target"].ranks == {"dense": 1}
    assert by_id["words"].ranks is not None and by_id["words"].ranks["keyword"] == 1
    assert by_id["target"].score == 0.5 / 61
    # alpha leans one way or the other
    assert hybrid(col, query, "zebra", k=1, alpha=0.9)[0].doc.doc_id == "target"
    assert hybrid(col, query, "zebra", k=1, alpha=0.1)[0].doc.doc_id == "words"
    col.close(save=False)


def test_hybrid_with_a_filter_returns_k_that_pass(tmp_path: Path) -> None:
    col = make(tmp_path / "c")
    col.upsert([doc(f"d{i}", f"common {i}", i, keep=int(i % 10 == 0)) for i in range(300)])
    hits = hybrid(col, unit(5), "common", k=20, flt={"keep": 1})
    assert len(hits) == 20 and all(int(h.doc.doc_id[1:]) % 10 == 0 for h in hits)
    col.close(save=False)


def test_a_collection_from_before_full_text_gets_its_index_on_open(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    col = make(folder)
    col.upsert([doc(f"d{i}", f"old document {i}", i) for i in range(25)])
    col.close(save=True)
    conn = sqlite3.connect(folder / DB_FILE)  # as a database made before this change: no index, no triggers
    conn.executescript(
        "DROP TRIGGER documents_fts_insert; DROP TRIGGER documents_fts_delete; DROP TRIGGER documents_fts_update;"
        "DROP TABLE documents_fts;"
    )
    conn.close()
    with structlog.testing.capture_logs() as logs:
        again = reopen(folder)
    events = [e for e in logs if e["event"].startswith("fulltext_index")]
    assert [e["event"] for e in events] == ["fulltext_index_progress", "fulltext_index_built"]
    assert events[0]["indexed"] == events[0]["total"] == 25 and events[1]["documents"] == 25
    assert len(keyword(again, "document", k=100)) == 25
    again.close(save=False)
    with structlog.testing.capture_logs() as logs:
        third = reopen(folder)  # built once: no second build
    assert not [e for e in logs if e["event"].startswith("fulltext_index")]
    integrity(folder)
    third.close(save=False)
