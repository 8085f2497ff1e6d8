"""Collection snapshots and restore from the client and the `akidb` CLI, against a real gateway."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from akidb_client import AkiDB, AsyncAkiDB, BadRequest, Conflict, Doc, NotFound

from tests.server import Server
from tests.test_cli import akidb

DIM = 384


def fill(db: AkiDB, name: str, n: int = 20) -> None:
    db.collections.create(name, metric="l2")
    vectors = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    db.collection(name).add([Doc(id=f"d{i}", text=f"text {i}", vector=vectors[i]) for i in range(n)])


def test_snapshot_list_download_restore_and_delete(db: AkiDB, name: str, tmp_path: Path) -> None:
    fill(db, name)
    col = db.collection(name)
    made = col.snapshot()
    assert made.collection == name and made.documents == 20 and made.size > 0
    assert [s.name for s in col.snapshots()] == [made.name]
    path = col.download_snapshot(made.name, tmp_path / "c.akidb-snapshot")
    assert path.stat().st_size == made.size and not list(tmp_path.glob("*.part"))

    restored = db.collections.restore(path, name=f"{name}-copy")
    assert restored.name == f"{name}-copy" and restored.document_count == 20
    assert db.collection(f"{name}-copy").get("d3").text == "text 3"
    with pytest.raises(Conflict):
        db.collections.restore(path, name=name)
    damaged = tmp_path / "bad.akidb-snapshot"
    damaged.write_bytes(path.read_bytes()[: made.size // 2])
    with pytest.raises(BadRequest, match="truncated"):
        db.collections.restore(damaged, name=f"{name}-bad")
    with pytest.raises(NotFound):
        db.collections.get(f"{name}-bad")

    col.delete_snapshot(made.name)
    assert col.snapshots() == []
    with pytest.raises(NotFound):
        col.download_snapshot(made.name, tmp_path / "gone")
    assert not (tmp_path / "gone").exists() and not (tmp_path / "gone.part").exists()


def test_cli_snapshot_commands_and_restore(server: Server, db: AkiDB, name: str, tmp_path: Path) -> None:
    fill(db, name)
    out = akidb(server, "snapshot", "create", "--collection", name)
    assert out.returncode == 0 and "20 documents" in out.stdout, out.stderr
    snap = db.collection(name).snapshots()[0].name
    listed = akidb(server, "snapshot", "list", "-c", name)
    assert listed.returncode == 0 and snap in listed.stdout
    target = tmp_path / "s.akidb-snapshot"
    out = akidb(server, "snapshot", "download", snap, "-c", name, "-o", str(target))
    assert out.returncode == 0 and target.stat().st_size > 0, out.stderr
    out = akidb(server, "restore", str(target), "--collection", f"{name}-r")
    assert out.returncode == 0 and "20 documents" in out.stdout, out.stderr
    assert db.collections.get(f"{name}-r").document_count == 20
    out = akidb(server, "restore", str(target), "--collection", f"{name}-r")
    assert out.returncode == 2 and "already exists" in out.stderr
    assert akidb(server, "snapshot", "delete", snap, "-c", name).returncode == 0
    out = akidb(server, "snapshot", "download", snap, "-c", name, "-o", str(target))
    assert out.returncode == 2 and "no snapshot" in out.stderr


async def test_the_async_client_has_the_same_snapshot_calls(
    server: Server, db: AkiDB, name: str, tmp_path: Path
) -> None:
    fill(db, name, n=5)
    async with AsyncAkiDB(server.url) as adb:
        col = adb.collection(name)
        made = await col.snapshot()
        assert [s.name for s in await col.snapshots()] == [made.name]
        path = await col.download_snapshot(made.name, tmp_path / "a.akidb-snapshot")
        assert path.stat().st_size == made.size
        restored = await adb.collections.restore(path, name=f"{name}-a")
        assert restored.document_count == 5
        await col.delete_snapshot(made.name)
        assert await col.snapshots() == []
