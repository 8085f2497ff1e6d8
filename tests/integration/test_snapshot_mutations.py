"""A restore treats its upload as hostile: hypothesis mutates real snapshots, every one is a 4xx that creates nothing.

One real gateway per storage engine (in-process, real SQLite on disk or a real PostgreSQL, no worker: the
collection takes vectors given by the client) makes a snapshot once; each example uploads a mutated copy to
POST /collections/restore. Mutations either leave the sums as they are (damage) or recompute every sum (an
attacker's edit), and reach every layer: bytes, tar members and their types, the manifest, SQLite pages, and
extra schema objects in the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from gateway.storage.backup import MANIFEST, MANIFEST_SUM
from gateway.storage.db import DB_FILE
from tests.support.engines import ENGINES
from tests.support.gateway import Gateway, make_config, running_gateway
from tests.support.postgres import fresh_database
from tests.support.processes import free_port

DIM = 8
OCTETS = {"Content-Type": "application/octet-stream"}
EXAMPLES = 45  # per kind of mutation: 360 drawn (a few are no-ops, not uploaded), about 12 s


@dataclass
class Snapshot:
    """A real snapshot's members by name, in order, and its bytes."""

    members: dict[str, bytes]
    raw: bytes

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.members[MANIFEST])  # type: ignore[no-any-return]


class Server:
    """A gateway on its own event loop, driven from synchronous hypothesis examples."""

    def __init__(self, gw: Gateway, loop: asyncio.AbstractEventLoop, data: Path) -> None:
        self.gw, self.loop, self.data = gw, loop, data

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            resp = await self.gw.client.request(method, path, **kwargs)
            return resp.status, await resp.json() if resp.content_type == "application/json" else await resp.read()

        return self.loop.run_until_complete(go())

    def restore(self, data: bytes, name: str = "copy") -> tuple[int, Any]:
        return self.call("POST", "/collections/restore", params={"name": name}, data=io.BytesIO(data), headers=OCTETS)

    def collections(self) -> list[str]:
        status, body = self.call("GET", "/collections")
        assert status == 200
        return sorted(c["name"] for c in body["collections"])

    def folders(self) -> list[str]:
        """Everything under the data directory but snapshots: a half-made collection would show here."""
        return sorted(str(p.relative_to(self.data)) for p in self.data.rglob("*") if "snapshots" not in p.parts)


@pytest.fixture(scope="module", params=ENGINES)
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Server]:
    """A gateway on each storage engine in turn: each makes the snapshot it is sent mutations of, so the files
    both engines write are tried, and both engines' restores refuse them."""
    data = tmp_path_factory.mktemp("mutations") / "data"
    settings: tuple[str, ...] = ()
    if request.param == "postgres":
        dsn = fresh_database(request.getfixturevalue("postgres_server"))
        settings = ("storage.backend=postgres", f"storage.postgres.dsn={dsn}")
    cfg = make_config(f"tcp://127.0.0.1:{free_port()}", str(data), "storage.max_restore_bytes=4000000", *settings)
    loop = asyncio.new_event_loop()
    context = running_gateway(cfg)
    gw = loop.run_until_complete(context.__aenter__())
    try:
        server = Server(gw, loop, data)
        status, body = server.call("POST", "/collections", json={"name": "c", "dimension": DIM, "metric": "cosine"})
        assert status == 201, body
        rng = np.random.default_rng(0)
        docs = [
            {"id": f"d{i}", "text": f"document {i} about " + "words " * (i % 5), "metadata": {"i": i},
             "vector": rng.standard_normal(DIM).tolist()}
            for i in range(300)
        ]  # fmt: skip
        status, body = server.call("POST", "/collections/c/documents", json={"documents": docs})
        assert status == 201, body
        yield server
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


@pytest.fixture(scope="module")
def snapshot(server: Server) -> Snapshot:
    status, info = server.call("POST", "/collections/c/snapshots")
    assert status == 201, info
    status, raw = server.call("GET", f"/collections/c/snapshots/{info['name']}")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    return Snapshot(members, raw)


# ---- building archives: as the gateway does, with the sums recomputed (forged) or left alone -------------------


def pack(members: dict[str, bytes], *, forge: bool, infos: dict[str, tarfile.TarInfo] | None = None) -> bytes:
    """A tar of `members` in order; with `forge`, the manifest's sums and its own sum fit the new contents."""
    members = dict(members)
    if forge and MANIFEST in members:
        try:
            manifest = json.loads(members[MANIFEST])
            for name, facts in manifest.get("members", {}).items():
                if name in members and isinstance(facts, dict):
                    facts.update(sha256=hashlib.sha256(members[name]).hexdigest(), size=len(members[name]))
            members[MANIFEST] = json.dumps(manifest, sort_keys=True).encode()
        except (ValueError, AttributeError):
            pass  # a manifest already made garbage stays so
        if MANIFEST_SUM in members:
            members[MANIFEST_SUM] = hashlib.sha256(members[MANIFEST]).hexdigest().encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = (infos or {}).get(name) or tarfile.TarInfo(name)
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def with_database(snapshot: Snapshot, change: Callable[[Path], None]) -> dict[str, bytes]:
    """The members with the database file changed by `change` (given the file on disk)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / DB_FILE
        path.write_bytes(snapshot.members[DB_FILE])
        change(path)
        return {**snapshot.members, DB_FILE: path.read_bytes()}


def execute(sql: str) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")  # every change in the one file that travels
            conn.execute(sql)
        finally:
            conn.close()

    return change


def root_pages(db: bytes) -> list[int]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / DB_FILE
        path.write_bytes(db)
        conn = sqlite3.connect(path)
        try:
            return sorted({int(r[0]) for r in conn.execute("SELECT rootpage FROM sqlite_master WHERE rootpage > 0")})
        finally:
            conn.close()


# ---- the mutations -------------------------------------------------------------------------------------------


@st.composite
def flipped_bytes(draw: st.DrawFn, snapshot: Snapshot) -> bytes:
    data = bytearray(snapshot.raw)
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    return bytes(data)


@st.composite
def cut_or_grown(draw: st.DrawFn, snapshot: Snapshot) -> bytes:
    if draw(st.booleans()):
        return snapshot.raw[: draw(st.integers(0, len(snapshot.raw) - 1))]
    return snapshot.raw + draw(st.binary(min_size=1, max_size=2048))


EVIL_NAMES = ["../escape", "/etc/passwd", "documents.sqlite3/../x", "index-1-1.usearch", "notes.txt", MANIFEST]


@st.composite
def member_changes(draw: st.DrawFn, snapshot: Snapshot) -> bytes:
    members = dict(snapshot.members)
    names = list(members)
    forge = draw(st.booleans())
    op = draw(st.sampled_from(["drop", "duplicate", "rename", "add", "swap"]))
    name = draw(st.sampled_from(names))
    note(f"{op} {name} forge={forge}")
    if op == "drop":
        del members[name]
    elif op == "rename":
        data = members.pop(name)
        members[draw(st.sampled_from([n for n in EVIL_NAMES if n not in members and n != name]))] = data
    elif op == "add":
        extra = draw(st.sampled_from([n for n in EVIL_NAMES if n not in members]))
        members[extra] = draw(st.binary(max_size=256))
    elif op == "swap":
        other = draw(st.sampled_from([n for n in names if n != name]))
        members[name], members[other] = members[other], members[name]
    else:  # a second member by a name already there: pack writes it after the others
        out = io.BytesIO(pack(members, forge=forge))
        tail = pack({name: draw(st.binary(max_size=256)) or b"x"}, forge=False)
        return out.getvalue()[: -2 * tarfile.RECORDSIZE] + tail if len(out.getvalue()) > 2 * 10240 else tail
    return pack(members, forge=forge)


def special(kind: str, name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, MANIFEST
    elif kind == "chardev":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    elif kind == "dir":
        info.type = tarfile.DIRTYPE
    elif kind == "contiguous":
        info.type = tarfile.CONTTYPE
    else:  # a PAX (GNU 1.0) sparse file: a few bytes that claim to expand to 1 GB
        info.pax_headers = {
            "GNU.sparse.major": "1",
            "GNU.sparse.minor": "0",
            "GNU.sparse.name": name,
            "GNU.sparse.realsize": str(1 << 30),
        }
    return info


@st.composite
def member_types(draw: st.DrawFn, snapshot: Snapshot) -> bytes:
    kind = draw(st.sampled_from(["symlink", "hardlink", "chardev", "fifo", "dir", "contiguous", "pax sparse"]))
    name = draw(st.sampled_from(list(snapshot.members)))
    members = dict(snapshot.members)
    if kind == "pax sparse":
        # the sparse map (one 1 GB hole, then 512 bytes of data) comes first in the member's data
        members[name] = b"1\n1073741312\n512\n".ljust(512, b"\0") + b"x" * 512
    return pack(members, forge=draw(st.booleans()), infos={name: special(kind, name)})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
MANIFEST_PATHS = [
    ("format",),
    ("documents",),
    ("members",),
    ("collection",),
    ("collection", "dimension"),
    ("collection", "metric"),
    ("collection", "name"),
    ("collection", "index"),
    ("collection", "index", "connectivity"),
    ("collection", "index", "dtype"),
    ("collection", "pooling"),
    ("collection", "normalize"),
]


@st.composite
def manifest_edits(draw: st.DrawFn, snapshot: Snapshot) -> bytes:
    members = dict(snapshot.members)
    if draw(st.booleans()):
        members[MANIFEST] = draw(st.binary(max_size=512))  # not even JSON
        return pack(members, forge=draw(st.booleans()))
    manifest = snapshot.manifest()
    *parents, leaf = draw(st.sampled_from(MANIFEST_PATHS))
    target = manifest
    for key in parents:
        target = target[key]
    original = target[leaf]
    if draw(st.booleans()):
        del target[leaf]
    else:
        value = draw(JSON.filter(lambda v: v != original))
        target[leaf] = value
    members[MANIFEST] = json.dumps(manifest).encode()
    forge = draw(st.booleans())
    if forge:  # the manifest's own sum is recomputed, not the members' (their sums are what was edited, maybe)
        members[MANIFEST_SUM] = hashlib.sha256(members[MANIFEST]).hexdigest().encode()
    return pack(members, forge=False)


@st.composite
def sqlite_pages(draw: st.DrawFn, snapshot: Snapshot) -> bytes:
    """A b-tree page of the database made unreadable: its type byte invalid, the rest as drawn."""
    db = bytearray(snapshot.members[DB_FILE])
    page_size = int.from_bytes(db[16:18], "big") or 65536
    page = draw(st.sampled_from(root_pages(bytes(db))))
    start = (page - 1) * page_size + (100 if page == 1 else 0)
    garbage = draw(st.binary(min_size=1, max_size=64))
    db[start : start + len(garbage)] = garbage
    db[start] = draw(st.integers(0, 255).filter(lambda b: b not in (2, 5, 10, 13)))  # not a b-tree page type
    return pack({**snapshot.members, DB_FILE: bytes(db)}, forge=draw(st.booleans()))


IDENT = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}\Z", fullmatch=True).map(lambda s: "x_" + s)
SCHEMA_OBJECTS = [
    "CREATE TRIGGER {name} AFTER INSERT ON documents BEGIN DELETE FROM vectors; END",
    "CREATE TRIGGER {name} BEFORE DELETE ON meta BEGIN SELECT 1; END",
    "CREATE VIEW {name} AS SELECT * FROM documents",
    "CREATE TABLE {name} (a)",
    "CREATE INDEX {name} ON documents (updated_at)",
    "CREATE VIRTUAL TABLE {name} USING fts5(a)",
    "ALTER TABLE documents ADD COLUMN {name} TEXT",
    "DROP TRIGGER documents_fts_insert",
    "DROP TABLE removed",
]


@st.composite
def schema_objects(draw: st.DrawFn, snapshot: Snapshot) -> bytes:
    # A snapshot the postgres engine wrote has no full-text index to drop: an embedded gateway builds it when it
    # opens the restored collection (gateway/storage/snapshot_db.py).
    fulltext = snapshot.manifest()["engine"] == "embedded"
    sql = draw(st.sampled_from([s for s in SCHEMA_OBJECTS if fulltext or "_fts_" not in s])).format(name=draw(IDENT))
    return pack(with_database(snapshot, execute(sql)), forge=draw(st.booleans()))


CONTENT_EDITS = [
    "UPDATE vectors SET vector = zeroblob(4) WHERE key = {n}",
    "UPDATE vectors SET vector = 'text' WHERE key = {n}",
    "DELETE FROM documents WHERE key = {n}",
    "INSERT INTO documents (doc_id, text, generated, updated_at) VALUES ('new{n}', 'x', 0, 0)",
]


@st.composite
def content_edits(draw: st.DrawFn, snapshot: Snapshot) -> bytes:
    """Sound SQLite with AkiDB's schema, but contents the manifest or the collection contradict."""
    sql = draw(st.sampled_from(CONTENT_EDITS)).format(n=draw(st.integers(1, 300)))
    return pack(with_database(snapshot, execute(sql)), forge=draw(st.booleans()))


MUTATIONS = {
    "bytes": flipped_bytes,
    "cut or grown": cut_or_grown,
    "members": member_changes,
    "member types": member_types,
    "manifest": manifest_edits,
    "sqlite pages": sqlite_pages,
    "schema objects": schema_objects,
    "contents": content_edits,
}


@pytest.mark.parametrize("kind", list(MUTATIONS))
def test_every_mutated_snapshot_is_a_4xx_and_creates_nothing(server: Server, snapshot: Snapshot, kind: str) -> None:
    tried = 0

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same examples on every run: CI is deterministic
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def restore_one(data: st.DataObject) -> None:
        nonlocal tried
        mutated = data.draw(MUTATIONS[kind](snapshot), label="archive")
        if mutated == snapshot.raw:
            return  # a no-op mutation (a flip undone by another): not a case
        before = server.folders()
        status, body = server.restore(mutated)
        tried += 1
        if status == 201:  # a failure: leave the server as it was, so hypothesis can replay and shrink it
            server.call("DELETE", "/collections/copy")
        assert 400 <= status < 500, (kind, status, body)
        assert body["error"]["code"] == "invalid_snapshot", body
        assert server.collections() == ["c"]
        assert server.folders() == before

    restore_one()
    print(f"\n{kind}: {tried} mutated snapshots uploaded, each refused")  # shown with -s (-rP)
    assert tried >= EXAMPLES * 0.8, f"only {tried} cases tried"


def test_the_unmutated_snapshot_restores_so_the_refusals_are_the_mutations(server: Server, snapshot: Snapshot) -> None:
    status, body = server.restore(snapshot.raw, "control")
    assert status == 201, body
    assert body["document_count"] == 300
    for forged in (pack(snapshot.members, forge=True), pack(with_database(snapshot, execute("VACUUM")), forge=True)):
        status, body = server.restore(forged, "control2")  # recomputed sums over sound contents: accepted
        assert status == 201, body
        assert server.call("DELETE", "/collections/control2")[0] in (200, 204)
    assert server.call("DELETE", "/collections/control")[0] in (200, 204)
