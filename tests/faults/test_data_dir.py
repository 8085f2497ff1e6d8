"""A data dir the gateway cannot use at start: a clear error naming the file and exit status 2; a damaged
index snapshot is no such case: the gateway rebuilds the index from SQLite and says so.

Real gateway processes (no worker needed: nothing here embeds), real files damaged on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from gateway.metrics import LATENCY_BUCKETS
from gateway.storage.collection import Collection, CollectionInfo
from gateway.storage.datadir import DataDir
from gateway.storage.db import DB_FILE, NewDocument
from gateway.storage.index import IndexParams, snapshots
from gateway.storage.metrics import StorageMetrics
from tests.support.processes import GatewayProcess, free_port

DOCS = 300


def stored_collection(data_dir: Path) -> Path:
    """A data dir holding one collection of DOCS documents with an index snapshot; its folder."""
    data = DataDir(data_dir)
    data.acquire()
    info = CollectionInfo("col_dd", "dd", 384, "cosine", "all-MiniLM-L6-v2", "mean", True,
                          IndexParams(16, 64, 64, "f16"), time.time())  # fmt: skip
    staging = data.staging(info.id)
    Collection.initialise(staging, info)
    folder = data.publish(staging, info.id)
    col = Collection.open(folder, 10_000, StorageMetrics(CollectorRegistry(), LATENCY_BUCKETS))
    vectors = np.random.default_rng(0).standard_normal((DOCS, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    col.upsert([NewDocument(f"d{i}", "some text " * 50, None, vectors[i], False) for i in range(DOCS)])
    col.close(save=True)
    data.release()
    return folder


def start(data_dir: Path) -> GatewayProcess:
    return GatewayProcess(f"tcp://127.0.0.1:{free_port()}", str(data_dir))


def refused(proc: GatewayProcess) -> tuple[int, str]:
    """The exit status and output of a gateway expected to stop at start-up."""
    try:
        code = proc.proc.wait(timeout=60)
    finally:
        proc.stop()
    return code, proc.output()


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot write: chmod for a normal user, a read-only tmpfs for root."""
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() != 0:
        target.chmod(0o555)
        yield target
        target.chmod(0o755)
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"root cannot be kept from writing without a read-only mount, and mount failed: {done.stderr!r}")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


def test_an_unwritable_data_dir_stops_the_gateway_with_status_2_naming_it(read_only_dir: Path) -> None:
    code, out = refused(start(read_only_dir))
    assert code == 2, out
    assert f"cannot use data directory {read_only_dir}" in out and "storage.data_dir" in out
    assert "Traceback" not in out


def test_a_data_dir_that_cannot_be_created_stops_the_gateway_with_status_2(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    code, out = refused(start(tmp_path / "a-file" / "data"))
    assert code == 2, out
    assert f"cannot use data directory {tmp_path / 'a-file' / 'data'}" in out and "Not a directory" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("size", [0, 100, "half"])
def test_a_truncated_database_stops_the_gateway_with_status_2_naming_the_file(tmp_path: Path, size: object) -> None:
    db = stored_collection(tmp_path) / DB_FILE
    with open(db, "r+b") as f:
        f.truncate(os.path.getsize(db) // 2 if size == "half" else int(size))  # type: ignore[call-overload]
    code, out = refused(start(tmp_path))
    assert code == 2, out
    assert str(db) in out and "storage.data_dir" in out
    assert "Traceback" not in out


async def test_a_zero_byte_snapshot_is_rebuilt_from_the_database_with_a_warning(tmp_path: Path) -> None:
    [snap] = snapshots(stored_collection(tmp_path))
    snap.path.write_bytes(b"")
    proc = start(tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                assert proc.proc.poll() is None, proc.output()[-3000:]
                try:
                    async with session.get(f"{proc.url}/collections/dd") as resp:
                        info = await resp.json()
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail(f"gateway never answered:\n{proc.output()[-3000:]}")
        assert info["document_count"] == DOCS
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]
    lines = [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]
    unusable = [e for e in lines if e["event"] == "index_snapshot_unusable"]
    assert unusable and unusable[0]["path"] == str(snap.path) and unusable[0]["level"] == "warning"
    opened = next(e for e in lines if e["event"] == "collection_opened")
    assert opened["snapshot"] == "rebuild" and opened["replayed"] == DOCS
