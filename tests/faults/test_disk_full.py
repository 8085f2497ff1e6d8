"""A full disk: writes refused with 507 and nothing of them stored; reads, search and /embed go on; writes
resume once space returns, with no restart; a restart shows exactly what was acknowledged.

The data dir is a real 40 MB tmpfs filled by real inserts through a real gateway process.
"""

from __future__ import annotations

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
            await client.ok("POST", "/collections", {"name": "full", "dimension": 384}, status=201)
            acked = 0
            for batch in range(400):  # 40 MB holds about 10,000 of these documents
                status, body = await client.call("POST", "/collections/full/documents", {"documents": documents(batch)})
                if status == 507:
                    break
                assert status == 201, body
                acked += BATCH
            else:
                pytest.fail("the disk never filled")
            refused = batch
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
