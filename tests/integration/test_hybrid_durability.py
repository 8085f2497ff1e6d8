"""The full-text index survives kill -9 with the gateway as a real process: mid-stream of upserts,
replacements and deletes, and in the middle of building the index for a collection that predates it."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest

from gateway.storage.db import DB_FILE
from tests.integration.test_persistence import PATIENT, started, vector
from tests.support.backends import ONE_BACKEND
from tests.support.processes import ROOT, GatewayProcess, WorkerProcess, child_env

pytestmark = [pytest.mark.slow, ONE_BACKEND]


def database(data_dir: Path) -> Path:
    (path,) = data_dir.glob(f"collections/*/{DB_FILE}")
    return path


def check_in_step(db: Path) -> int:
    """FTS5's own check that the index holds exactly the documents' texts (raises if not); documents with text."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("INSERT INTO documents_fts (documents_fts, rank) VALUES ('integrity-check', 1)")
        return int(conn.execute("SELECT COUNT(*) FROM documents WHERE text IS NOT NULL").fetchone()[0])
    finally:
        conn.close()


def token(doc_id: str) -> str:
    """A word only this document's text holds (FTS5 splits ids like w1-2-3 into three words)."""
    return "tok" + doc_id.replace("-", "q")


async def test_kill_9_mid_stream_leaves_text_and_full_text_index_in_step(
    zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path: Path
) -> None:
    args = ("--set", "storage.snapshot_every=64", *PATIENT)
    first = GatewayProcess(zmq_endpoint, str(tmp_path), *args)
    acked: set[str] = set()
    try:
        async with started(first) as client:
            await client.call("POST", "/collections", {"name": "stream"}, 201)

            async def writer(w: int) -> None:
                for b in range(10_000):
                    docs = [
                        {
                            "id": f"w{w}-{b}-{i}",
                            "text": f"common {token(f'w{w}-{b}-{i}')}",
                            "vector": vector(b * 10 + i),
                        }
                        for i in range(5)
                    ]
                    try:
                        await client.call("POST", "/collections/stream/documents", {"documents": docs}, 201)
                        if b % 3 == 2:  # replace one of the previous batch's texts, delete another
                            old = f"w{w}-{b - 1}-0"
                            body = {"id": old, "text": f"replaced {token(old)}", "vector": vector(7)}
                            await client.call("POST", "/collections/stream/documents", body, 201)
                            await client.call("DELETE", f"/collections/stream/documents/w{w}-{b - 1}-1")
                    except (aiohttp.ClientError, AssertionError):
                        return  # the gateway is gone
                    acked.update(d["id"] for d in docs)
                    if len(acked) >= 300:
                        enough.set()

            enough = asyncio.Event()
            writers = [asyncio.create_task(writer(w)) for w in range(4)]
            await enough.wait()
            first.kill()
            await asyncio.gather(*writers)
    finally:
        first.stop()
    assert check_in_step(database(tmp_path)) >= 250  # straight after the kill, before any restart
    second = GatewayProcess(zmq_endpoint, str(tmp_path), *args)
    try:
        async with started(second) as client:
            stored: dict[str, str] = {}
            cursor: str | None = "0"
            while cursor is not None:
                page = await client.call("GET", f"/collections/stream/documents?after={cursor}&limit=1000")
                stored.update((d["id"], d["text"]) for d in page["documents"])
                cursor = page["next"]
            common = await client.call(
                "POST", "/collections/stream/search", {"query": "common", "mode": "keyword", "k": 1000, "include": []}
            )
            assert {r["id"] for r in common["results"]} == {i for i, t in stored.items() if t.startswith("common")}
            for doc_id in list(stored)[:: max(1, len(stored) // 40)]:
                found = await client.call(
                    "POST", "/collections/stream/search", {"query": token(doc_id), "mode": "keyword", "include": []}
                )
                assert [r["id"] for r in found["results"]] == [doc_id]
    finally:
        assert second.stop() == 0, second.output()[-3000:]
    assert check_in_step(database(tmp_path)) == len(stored)


BUILD_AND_DIE = """
import os, signal, sqlite3, sys
from gateway.storage import fulltext
fulltext.BUILD_BATCH = 100
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
def die(done, total):
    if done >= 300:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 mid-build, after three batches were written
fulltext.ensure(conn, die)
"""


async def test_kill_9_while_building_the_index_of_an_old_collection(
    zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path: Path
) -> None:
    first = GatewayProcess(zmq_endpoint, str(tmp_path), *PATIENT)
    try:
        async with started(first) as client:
            await client.call("POST", "/collections", {"name": "old"}, 201)
            for b in range(2):
                docs = [{"id": f"d{b}-{i}", "text": f"legacy text {b} {i}", "vector": vector(i)} for i in range(500)]
                await client.call("POST", "/collections/old/documents", {"documents": docs}, 201)
    finally:
        assert first.stop() == 0
    db = database(tmp_path)
    conn = sqlite3.connect(db)  # as made before full-text search: no index, no triggers
    conn.executescript(
        "DROP TRIGGER documents_fts_insert; DROP TRIGGER documents_fts_delete; DROP TRIGGER documents_fts_update;"
        "DROP TABLE documents_fts;"
    )
    conn.close()
    died = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", textwrap.dedent(BUILD_AND_DIE), str(db)],
        env=child_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert died.returncode == -signal.SIGKILL
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'documents_fts%'").fetchall() == []
    conn.close()
    second = GatewayProcess(zmq_endpoint, str(tmp_path), *PATIENT)
    try:
        async with started(second) as client:
            found = await client.call(
                "POST", "/collections/old/search", {"query": "legacy", "mode": "keyword", "k": 1000, "include": []}
            )
            assert len(found["results"]) == 1000
    finally:
        assert second.stop() == 0
    assert '"fulltext_index_built"' in second.output() and '"documents": 1000' in second.output()
    assert check_in_step(db) == 1000
