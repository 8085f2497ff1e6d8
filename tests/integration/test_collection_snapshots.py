"""Collection snapshots (backups) on a real disk: one checked file, written by either storage engine.

No gateway and no worker: `Backups` and `unpack` against real collections. The checks on a file hold whichever
engine wrote it, so the archive fixture is made on both (`BOTH_ENGINES`); the tests of how the embedded engine
copies a collection it keeps serving (its index snapshots, its removal records) are the embedded engine's.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from gateway.storage.backup import MANIFEST, SUFFIX, Backups, copy_database, unpack
from gateway.storage.collection import Collection, CollectionInfo
from gateway.storage.db import DB_FILE
from gateway.storage.embedded_store import snapshot_source
from gateway.storage.errors import CollectionExists, SnapshotInvalid, SnapshotNotFound
from gateway.storage.index import IndexParams
from tests.integration.test_collection_store import DIM, docs, make, reopen
from tests.support.engines import BOTH_ENGINES, open_engine

MAX_BYTES = 1 << 30  # storage.max_restore_bytes
ALL = frozenset(("text", "metadata", "vector"))
PARAMS = IndexParams(16, 128, 128, "f32")


def make_info() -> CollectionInfo:
    """The description `make` gives its collection, for one made through an engine's catalogue."""
    return CollectionInfo("col_test", "test", DIM, "cosine", "all-MiniLM-L6-v2", "mean", True, PARAMS, time.time())


def restore(archive: Path, folder: Path) -> Collection:
    """What the service does: unpack into an empty folder, record a new description, open."""
    folder.mkdir()
    old = CollectionInfo.from_json(unpack(archive, folder, MAX_BYTES).info_json)
    Collection.initialise(folder, dataclasses.replace(old, id="col_restored", name="restored"))
    return reopen(folder)


def test_a_snapshot_restores_every_document_and_the_same_search_results(tmp_path: Path) -> None:
    """Embedded engine only: a copy taken while index snapshots forget removal records along the way."""
    col = make(tmp_path / "c", snapshot_every=7)  # index snapshots and forgotten removals along the way
    col.upsert(docs(40))
    col.upsert(docs(5, seed=1))  # replaces d0..d4
    col.delete("d10")
    backups = Backups(tmp_path / "data")
    made = backups.create(col.info, "embedded", functools.partial(snapshot_source, col))
    assert made.documents == 39 and made.size > 0
    assert [b.name for b in backups.list("test")] == [made.name]
    back = restore(backups.path("test", made.name), tmp_path / "r")
    assert back.info.name == "restored" and back.info.dimension == col.info.dimension
    assert len(back.index) == len(col.index) == 39
    assert back.store.get("d10", False) is None
    for i in (0, 4, 5, 39):
        a, b = col.store.get(f"d{i}", True), back.store.get(f"d{i}", True)
        assert a is not None and b is not None
        assert (a.text, a.metadata, a.vector) == (b.text, b.metadata, b.vector)
    query = np.frombuffer(col.store.get("d20", True).vector or b"", dtype=np.float32)  # type: ignore[union-attr]
    hits = lambda c: [(h.doc.doc_id, round(h.score, 5)) for h in c.search(query, 10, None, 100, False)]  # noqa: E731
    assert hits(back) == hits(col)
    col.close(save=False)
    back.close(save=False)


def test_no_removal_is_forgotten_while_a_backup_copies_the_database(tmp_path: Path) -> None:
    """Embedded engine only (its index snapshots forget removal records). The index copy is taken first;
    removals after it must still be in the database copy, or the restored index would keep deleted documents.
    Index snapshots (which forget removals) run meanwhile here."""
    col = make(tmp_path / "c", snapshot_every=1)
    col.upsert(docs(20))
    col.wait_for_snapshot()
    work = tmp_path / "copy"
    work.mkdir()
    with col.backup_source() as (index_bytes, last_key, last_removal):
        col.delete("d1")
        col.wait_for_snapshot()
        col.upsert(docs(3, start=100))  # a write after the snapshot: the writer would forget d1's removal
        col.wait_for_snapshot()
        col.upsert(docs(1, start=200))
        copy_database(col.store.path, work / DB_FILE)
    (work / f"index-{last_key}-{last_removal}.usearch").write_bytes(index_bytes)
    back = reopen(work)
    assert len(back.index) == 23 == back.store.count()
    assert back.store.get("d1", False) is None
    back.close(save=False)
    col.close(save=False)


@pytest.fixture
async def archive(tmp_path: Path, engine_settings: tuple[str, ...]) -> Path:
    """A snapshot of 30 documents made by the test's engine, through the storage seam as the gateway makes one."""
    async with open_engine(tmp_path / "engine", *engine_settings) as cat:
        col = await cat.create(make_info())
        await col.upsert(docs(30))
        backups = Backups(tmp_path / "data")
        return backups.path("test", (await col.export_snapshot(backups)).name)


@BOTH_ENGINES
async def test_a_snapshot_restores_on_its_own_engine_with_every_document_and_answer(
    tmp_path: Path, engine_settings: tuple[str, ...]
) -> None:
    async with open_engine(tmp_path / "engine", *engine_settings) as cat:
        col = await cat.create(make_info())
        await col.upsert(docs(40))
        await col.upsert(docs(5, seed=1))  # replaces d0..d4
        assert await col.delete("d10")
        backups = Backups(tmp_path / "data")
        made = await col.export_snapshot(backups)
        assert made.documents == 39 and [b.name for b in backups.list("test")] == [made.name]
        path = backups.path("test", made.name)
        back = await cat.restore("restored", lambda staging: unpack(path, staging, MAX_BYTES).info_json)
        assert (back.info.name, back.info.dimension) == ("restored", col.info.dimension) and back.info.id != col.info.id
        assert await back.count() == 39 and await back.get("d10", False) is None
        for i in (0, 4, 5, 39):
            a, b = await col.get(f"d{i}", True), await back.get(f"d{i}", True)
            assert a is not None and b is not None
            assert (a.text, a.metadata, a.vector, a.generated) == (b.text, b.metadata, b.vector, b.generated)
        query = docs(1, seed=20)[0].vector
        hits = [[(h.doc.doc_id, round(h.score, 5)) for h in await c.search(query, 10, None, ALL)] for c in (col, back)]
        assert hits[0] == hits[1]
        with pytest.raises(CollectionExists):  # a name that exists is refused, and nothing is made
            await cat.restore("restored", lambda staging: unpack(path, staging, MAX_BYTES).info_json)
        assert [c.info.name for c in cat.opened()] == ["test", "restored"]


def member_offset(path: Path, name: str) -> int:
    with tarfile.open(path) as tar:
        return tar.getmember(name).offset_data


@BOTH_ENGINES
@pytest.mark.parametrize("member", [DB_FILE, MANIFEST, "index", "end"])
def test_an_altered_byte_anywhere_in_a_member_is_refused_naming_a_checksum(
    archive: Path, tmp_path: Path, member: str
) -> None:
    data = bytearray(archive.read_bytes())
    if member == "end":
        data[-3] ^= 0x01
    else:
        with tarfile.open(archive) as tar:
            name = next(m.name for m in tar.getmembers() if m.name.startswith(member))
        data[member_offset(archive, name) + 5] ^= 0x01
    bad = tmp_path / f"bad{SUFFIX}"
    bad.write_bytes(bytes(data))
    (tmp_path / "r").mkdir()
    with pytest.raises(SnapshotInvalid, match="checksum mismatch"):
        unpack(bad, tmp_path / "r", MAX_BYTES)


@BOTH_ENGINES
@pytest.mark.parametrize("keep", [0.0, 0.001, 0.3, 0.7, 0.99, -1])
def test_a_truncated_file_is_refused_as_truncated(archive: Path, tmp_path: Path, keep: float) -> None:
    data = archive.read_bytes()
    bad = tmp_path / f"cut{SUFFIX}"
    bad.write_bytes(data[:-1] if keep == -1 else data[: int(len(data) * keep)])
    (tmp_path / "r").mkdir()
    with pytest.raises(SnapshotInvalid, match="truncated"):
        unpack(bad, tmp_path / "r", MAX_BYTES)


def test_a_file_that_is_not_a_snapshot_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x"
    bad.write_bytes(b"hello" * 1000)
    (tmp_path / "r").mkdir()
    with pytest.raises(SnapshotInvalid, match="not an AkiDB snapshot"):
        unpack(bad, tmp_path / "r", MAX_BYTES)
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        tar.add(bad, arcname="../escape")
    with pytest.raises(SnapshotInvalid, match="unexpected member"):
        unpack(evil, tmp_path / "r", MAX_BYTES)
    assert not (tmp_path / "escape").exists()


@BOTH_ENGINES
def test_unknown_names_are_not_found_and_half_written_files_are_neither_listed_nor_kept(
    archive: Path, tmp_path: Path
) -> None:
    backups = Backups(tmp_path / "data")
    for name in ("nope", "../c", ".hidden", ""):
        with pytest.raises(SnapshotNotFound):
            backups.path("test", name)
    folder = archive.parent
    (folder / f".half{SUFFIX}.tmp").write_bytes(b"x")
    (folder / ".half.work").mkdir()
    (backups.root / ".upload-1").write_bytes(b"x")
    assert len(backups.list("test")) == 1
    backups.sweep()
    assert sorted(p.name for p in backups.root.rglob("*")) == sorted(["test", archive.name])
    backups.delete("test", archive.name[: -len(SUFFIX)])
    assert backups.list("test") == []


@BOTH_ENGINES
def test_staged_bytes_are_bounded_and_sparse_members_refused_before_they_expand(archive: Path, tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    with pytest.raises(SnapshotInvalid, match=r"more than storage\.max_restore_bytes \(4096\)"):
        unpack(archive, tmp_path / "r", 4096)
    assert sum(p.stat().st_size for p in (tmp_path / "r").iterdir()) <= 4096
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    sparse = tmp_path / f"sparse{SUFFIX}"
    with tarfile.open(sparse, "w", format=tarfile.GNU_FORMAT) as tar:
        for member, data in members:
            if member.name == DB_FILE:
                member.type = tarfile.GNUTYPE_SPARSE  # passes tarfile's isfile(); its map could claim any size
            tar.addfile(member, io.BytesIO(data))
    with pytest.raises(SnapshotInvalid, match=f"member '{DB_FILE}' is a sparse file"):
        unpack(sparse, tmp_path / "r", MAX_BYTES)
