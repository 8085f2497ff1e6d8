"""A full disk: writes refused with 507 and nothing of them stored; reads, search and /embed go on; writes
resume once space returns, with no restart; a restart shows exactly what was acknowledged.

The data dir is a real 40 MB tmpfs filled by real inserts through a real gateway process.
"""

from __future__ import annotations

import asyncio
import errno
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.faults.conftest import PATIENT
from tests.support.live import LiveClient, ready
from tests.support.processes import GatewayProcess, WorkerProcess

pytestmark = pytest.mark.slow
BATCH = 200
TEXT = "x" * 2048


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MB tmpfs to fill (mounting needs root, as CI runs)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def documents(batch: int) -> list[dict]:
    vectors = np.random.default_rng(batch).standard_normal((BATCH, 384)).astype(np.float32)
    return [{"id": f"b{batch}-{i}", "vector": vectors[i].tolist(), "text": TEXT} for i in range(BATCH)]


def without_fulltext(data_dir: Path) -> None:
    """Make each collection's database one from before full-text search: documents, no FTS5 table."""
    for db in data_dir.glob("collections/*/documents.sqlite3"):
        conn = sqlite3.connect(db)
        for trigger in ("insert", "delete", "update"):
            conn.execute(f"DROP TRIGGER documents_fts_{trigger}")
        conn.execute("DROP TABLE documents_fts")
        conn.commit()
        conn.close()  # the last connection: checkpointed, the WAL removed


def fill(path: Path) -> None:
    """Write `path` until the disk refuses another byte."""
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as out:
        while chunk:
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                chunk = chunk[: len(chunk) // 2]


async def insert_until_full(client: LiveClient, name: str) -> tuple[int, int, dict]:
    """Make collection `name` and insert batches until one is refused: (documents acknowledged, the refused
    batch's number, the refusal's body)."""
    await client.ok("POST", "/collections", {"name": name, "dimension": 384}, status=201)
    acked = 0
    for batch in range(400):  # 40 MB holds about 10,000 of these documents
        status, body = await client.call("POST", f"/collections/{name}/documents", {"documents": documents(batch)})
        if status == 507:
            return acked, batch, body
        assert status == 201, body
        acked += BATCH
    pytest.fail("the disk never filled")


async def counts(client: LiveClient, name: str) -> tuple[int, int]:
    """(the index's count, the database's count): the live view and the stored one."""
    info = await client.ok("GET", f"/collections/{name}")
    page = await client.ok("GET", f"/collections/{name}/documents?limit=1")
    return info["document_count"], page["total"]


async def test_a_full_disk_refuses_writes_with_507_and_stores_nothing_of_them(
    endpoint: str, worker: WorkerProcess, small_disk: Path
) -> None:
    data_dir = small_disk / "data"
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 4 * 1024 * 1024)  # freed later, to give space back
    # Snapshots every 2,000 changes: they too meet the full disk, and must not turn a write into an error.
    gateway = GatewayProcess(endpoint, str(data_dir), "--set", "storage.snapshot_every=2000", *PATIENT)
    try:
        async with ready(gateway) as client:
            acked, refused, body = await insert_until_full(client, "full")
            assert body["error"]["code"] == "insufficient_storage", body
            assert str(data_dir) in body["error"]["message"] and "free" in body["error"]["message"]
            assert acked > 2000

            # Refused again while full; what was acknowledged is what is stored, in both views.
            status, _ = await client.call("POST", "/collections/full/documents", {"documents": documents(refused)})
            assert status == 507
            assert await counts(client, "full") == (acked, acked)
            assert (await client.call("GET", f"/collections/full/documents/b{refused}-0"))[0] == 404
            assert await client.metric("akidb_storage_writable") == 0
            free = await client.metric("akidb_storage_free_bytes")
            assert free is not None and free < 1024 * 1024

            # Reads, search, /embed and readiness are untouched.
            first = documents(0)[0]
            got = await client.ok("GET", "/collections/full/documents/b0-0")
            assert got["text"] == TEXT
            hits = await client.ok("POST", "/collections/full/search", {"vector": first["vector"], "k": 1})
            assert hits["results"][0]["id"] == "b0-0"
            embedded = await client.ok("POST", "/embed", {"texts": ["still embedding"]})
            assert len(embedded["embeddings"][0]) == 384
            assert (await client.ok("GET", "/ready"))["status"] == "ready"

            # Space returns: writes resume, no restart.
            filler.unlink()
            await client.ok("POST", "/collections/full/documents", {"documents": documents(refused)}, status=201)
            acked += BATCH
            assert await counts(client, "full") == (acked, acked)
            assert await client.metric("akidb_storage_writable") == 1
    finally:
        assert gateway.stop() == 0, gateway.output()[-3000:]
    log = gateway.output()
    assert "write_refused_disk_full" in log
    assert "Traceback" not in log, log[-3000:]

    again = GatewayProcess(endpoint, str(data_dir), *PATIENT)
    try:
        async with ready(again) as client:
            assert await counts(client, "full") == (acked, acked)
            assert (await client.call("GET", f"/collections/full/documents/b{refused}-{BATCH - 1}"))[0] == 200
            assert (await client.call("GET", f"/collections/full/documents/b{refused + 1}-0"))[0] == 404
    finally:
        again.stop()


@pytest.mark.parametrize("older_database", [False, True], ids=["wal-left-by-kill", "checkpointed-without-fulltext"])
async def test_a_gateway_killed_on_a_full_disk_starts_on_it_serves_reads_and_catches_up_once_space_returns(
    endpoint: str, worker: WorkerProcess, small_disk: Path, older_database: bool
) -> None:
    """Restarts are when full disks are found. Killed while full, the gateway starts on the full disk (its
    WAL as the kill left it; or, `older_database`, checkpointed and without a full-text index, so the start
    finds no -shm file to map and an index to build), serves reads, refuses writes, and once space is freed
    does what the start had no room for, with no restart."""
    data_dir = small_disk / "data"
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 4 * 1024 * 1024)
    gateway = GatewayProcess(endpoint, str(data_dir), *PATIENT)
    try:
        async with ready(gateway) as client:
            acked, refused, _ = await insert_until_full(client, "full")
    finally:
        gateway.kill()  # full, mid-life: no closing snapshot, the WAL as it was
    assert "Traceback" not in gateway.output(), gateway.output()[-3000:]
    filler.unlink()
    if older_database:
        without_fulltext(data_dir)
    fill(small_disk / "rest")  # not a byte left

    again = GatewayProcess(endpoint, str(data_dir), *PATIENT)
    try:
        async with ready(again) as client:
            body = await client.ok("GET", "/ready")
            deferred = ["writes to collection 'full'", "full-text index of collection 'full'"] if older_database else []
            assert body["storage"] == {"writable": False, "deferred": deferred}, body
            assert await client.metric("akidb_storage_writable") == 0
            assert await client.metric("akidb_storage_deferred_work") == len(deferred)
            assert await counts(client, "full") == (acked, acked)
            first = documents(0)[0]
            hits = await client.ok("POST", "/collections/full/search", {"vector": first["vector"], "k": 1})
            assert hits["results"][0]["id"] == "b0-0"
            assert (await client.ok("GET", "/collections/full/documents/b0-0"))["text"] == TEXT
            embedded = await client.ok("POST", "/embed", {"texts": ["still embedding"]})
            assert len(embedded["embeddings"][0]) == 384
            status, body = await client.call("POST", "/collections/full/documents", {"documents": documents(refused)})
            assert status == 507 and body["error"]["code"] == "insufficient_storage", body
            status, body = await client.call("POST", "/collections", {"name": "more", "dimension": 384})
            assert status == 507, body
            status, body = await client.call("POST", "/collections/full/search", {"query": TEXT, "mode": "keyword"})
            if older_database:
                assert status == 503 and body["error"]["code"] == "fulltext_pending", body
            else:
                assert status == 200, body

            # Space returns: what the start deferred runs, and writes resume, with no restart.
            (small_disk / "rest").unlink()
            loop = asyncio.get_running_loop()
            end = loop.time() + 60
            while (body := await client.ok("GET", "/ready"))["storage"] != {"writable": True, "deferred": []}:
                assert loop.time() < end, (body, again.output()[-3000:])
                await asyncio.sleep(0.2)
            assert await client.metric("akidb_storage_deferred_work") == 0
            await client.ok("POST", "/collections/full/documents", {"documents": documents(refused)}, status=201)
            acked += BATCH
            assert await counts(client, "full") == (acked, acked)
            assert await client.metric("akidb_storage_writable") == 1
            keyword = await client.ok("POST", "/collections/full/search", {"query": TEXT, "mode": "keyword", "k": 3})
            assert len(keyword["results"]) == 3, keyword
            # The re-embedding tables the start did not make: reading a job needs none.
            status, body = await client.call("GET", "/collections/full/jobs/nope")
            assert status == 404 and body["error"]["code"] == "job_not_found", body
    finally:
        assert again.stop() == 0, again.output()[-3000:]
    log = again.output()
    assert "storage_full_at_start" in log, log[-3000:]
    if older_database:
        assert "startup_write_deferred" in log and "deferred_work_done" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]

    third = GatewayProcess(endpoint, str(data_dir), *PATIENT)
    try:
        async with ready(third) as client:
            assert await counts(client, "full") == (acked, acked)
    finally:
        third.stop()
