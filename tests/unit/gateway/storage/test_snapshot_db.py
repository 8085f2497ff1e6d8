"""The snapshot database either engine writes and the PostgreSQL engine reads back: rows in insertion order,
a database the restore's checks accept, and values of a type AkiDB never stores refused."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from gateway.storage.engine import CollectionInfo
from gateway.storage.errors import SnapshotInvalid
from gateway.storage.index import IndexParams
from gateway.storage.snapshot_db import DatabaseWriter, Row, count, empty_index, rows
from gateway.storage.snapshot_trust import check_database, check_index

DIM = 4
INFO = CollectionInfo("col_x", "x", DIM, "cosine", "m", None, True, IndexParams(16, 64, 64, "f32"), time.time())


def row(i: int) -> Row:
    vector = np.full(DIM, i, dtype=np.float32).tobytes()
    return Row(f"d{i}", None if i % 3 == 0 else f"text {i}", None if i % 2 else f'{{"i": {i}}}', vector, i % 5 == 0, i)


def written(path: Path, n: int) -> Path:
    writer = DatabaseWriter(path, INFO)
    for start in range(0, n, 4):
        writer.add([row(i) for i in range(start, min(n, start + 4))])
    assert writer.close() == n
    return path


def test_rows_come_back_in_insertion_order_a_batch_at_a_time_and_the_checks_accept_the_file(tmp_path: Path) -> None:
    path = written(tmp_path / "db", 10)
    check_database(path, DIM, 10)  # what a restore checks before reading a row
    name, data = empty_index(INFO)
    (tmp_path / name).write_bytes(data)
    check_index(tmp_path / name, {"dimension": DIM, "metric": "cosine", "index": INFO.index.__dict__})
    batches = list(rows(path, batch=3))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert [r for b in batches for r in b] == [row(i) for i in range(10)]
    assert count(path) == 10


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE documents SET text = x'0102' WHERE key = 2",
        "UPDATE documents SET metadata = '[1, 2]' WHERE key = 3",
        "UPDATE documents SET metadata = '{not json' WHERE key = 3",
        "UPDATE documents SET generated = 2 WHERE key = 4",
        "UPDATE documents SET doc_id = x'00' WHERE key = 5",
    ],
)
def test_a_value_of_a_type_akidb_never_stores_is_refused(tmp_path: Path, edit: str) -> None:
    path = written(tmp_path / "db", 6)
    with sqlite3.connect(path) as conn:
        conn.execute(edit)
    with pytest.raises(SnapshotInvalid, match="the file was altered"):
        for _ in rows(path):
            pass
