"""What a restore checks before it trusts an uploaded snapshot: the upload is treated as hostile.

The manifest's sha256 sums sit in the same file as what they cover, so they only catch damage: whoever edits a
snapshot can recompute them. So, beyond the sums:

- tar members must be plain files (no links, devices, or sparse files that expand far beyond their upload);
- the database is opened with `trusted_schema=OFF` (no function runs from its schema while it is examined), must
  pass `PRAGMA integrity_check`, and must hold exactly the tables, indexes, triggers and views AkiDB creates:
  an extra trigger or view would otherwise run inside the gateway with every write or read;
- with `storage.snapshot_hmac_key` set, the manifest must carry an HMAC made with that key (`manifest.hmac`),
  which proves the snapshot was written by a gateway holding the key and not edited since.

Every refusal is `SnapshotInvalid` (400 `invalid_snapshot`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import sqlite3
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.storage import fulltext
from gateway.storage.db import SCHEMA as DOCUMENTS_SCHEMA
from gateway.storage.errors import SnapshotInvalid
from gateway.storage.index import SNAPSHOT, IndexParams, Snapshot, VectorIndex
from shared.config import INDEX_DTYPES, METRICS, POOLINGS, STORAGE_BACKENDS

SIGNATURE = "manifest.hmac"
# The bounds POST /collections accepts (gateway/api/schemas/collections.py): a restored description keeps to them.
MAX_DIMENSION = 1 << 16
CONNECTIVITY = (2, 128)
EXPANSION = (1, 4096)
_PLAIN = (tarfile.REGTYPE, tarfile.AREGTYPE)
# A schema object as SQLite lists it; `sql` with its whitespace collapsed.
SchemaRow = tuple[str, str, str, str | None]
SCHEMA_QUERY = "SELECT type, name, tbl_name, sql FROM sqlite_master"


def check_member(member: tarfile.TarInfo) -> None:
    """A plain, non-sparse file. Links and devices could point outside the staging folder; a sparse member
    passes tarfile's regular-file check yet could expand a small upload to many GB before a checksum fails."""
    if member.type not in _PLAIN or member.issparse():
        kind = "a sparse file" if member.issparse() else "not a plain file"
        raise SnapshotInvalid(f"member {member.name!r} is {kind}; this is not an AkiDB snapshot")


def sign(manifest: bytes, key: str) -> bytes:
    """The HMAC-SHA256 (hex) of a manifest under `storage.snapshot_hmac_key`."""
    return hmac.new(key.encode(), manifest, hashlib.sha256).hexdigest().encode()


def verify_signature(manifest: bytes, signature: bytes | None, key: str | None) -> None:
    """With a key set, the manifest must carry a valid HMAC; without one, any signature is ignored."""
    if key is None:
        return
    if signature is None:
        raise SnapshotInvalid(
            f"the snapshot carries no {SIGNATURE}, and this gateway restores only signed snapshots "
            "(storage.snapshot_hmac_key is set)"
        )
    if not hmac.compare_digest(signature.strip(), sign(manifest, key)):
        raise SnapshotInvalid(
            f"{SIGNATURE} does not match: the snapshot was altered, or made with another storage.snapshot_hmac_key"
        )


@dataclass(frozen=True)
class Manifest:
    """A manifest whose every field has the type and range a gateway writes."""

    members: dict[str, tuple[str, int]]  # name -> (sha256 hex, size)
    collection: dict[str, Any]  # the collection's description, as `CollectionInfo.to_json` wrote it
    documents: int
    engine: str  # the storage engine that wrote the snapshot


def read_manifest(raw: bytes, fmt: int) -> Manifest:
    """Parse and check a manifest of format `fmt`: a sum only says it was not damaged, not that a gateway wrote it."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise SnapshotInvalid("manifest.json is not JSON: this is not an AkiDB snapshot") from None
    _expect(isinstance(data, dict), "is not an object")
    if data.get("format") != fmt:
        raise SnapshotInvalid(f"snapshot format {data.get('format')!r} is not one this gateway reads ({fmt})")
    members = data.get("members")
    _expect(isinstance(members, dict), "has no members")
    checked = {}
    for name, facts in members.items():
        _expect(isinstance(facts, dict) and set(facts) == {"sha256", "size"}, f"member {name!r} is malformed")
        digest, size = facts["sha256"], facts["size"]
        _expect(isinstance(digest, str) and _is_count(size), f"member {name!r} is malformed")
        checked[name] = (digest, size)
    documents = data.get("documents")
    _expect(_is_count(documents), "has no document count")
    engine = data.get("engine", "embedded")  # snapshots made before the manifest named it: embedded ones
    _expect(engine in STORAGE_BACKENDS, "names no storage engine AkiDB has")
    return Manifest(checked, _description(data.get("collection")), documents, engine)


def _description(info: Any) -> dict[str, Any]:
    fields = {"id", "name", "dimension", "metric", "model", "pooling", "normalize", "index", "created_at"}
    _expect(isinstance(info, dict) and set(info) == fields, "has no collection description")
    _expect(isinstance(info["id"], str) and isinstance(info["name"], str), "names no collection")
    _expect(_is_count(info["dimension"]) and 1 <= info["dimension"] <= MAX_DIMENSION, "has a bad dimension")
    _expect(info["metric"] in METRICS and isinstance(info["model"], str), "has a bad metric or model")
    _expect(info["pooling"] is None or info["pooling"] in POOLINGS, "has a bad pooling")
    _expect(isinstance(info["normalize"], bool), "has a bad normalize")
    _expect(_is_number(info["created_at"]), "has a bad created_at")
    index = info["index"]
    keys = {"connectivity", "expansion_add", "expansion_search", "dtype"}
    _expect(isinstance(index, dict) and set(index) == keys and index["dtype"] in INDEX_DTYPES, "has a bad index")
    for key, (low, high) in (("connectivity", CONNECTIVITY), ("expansion_add", EXPANSION)):
        _expect(_is_count(index[key]) and low <= index[key] <= high, f"has a bad index {key}")
    _expect(
        _is_count(index["expansion_search"]) and EXPANSION[0] <= index["expansion_search"] <= EXPANSION[1],
        "has a bad index expansion_search",
    )
    return info


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise SnapshotInvalid(f"manifest.json {problem}: this is not an AkiDB snapshot")


def check_index(path: Path, collection: dict[str, Any]) -> None:
    """The index member loads as an index of the described collection. A gateway would otherwise drop it and
    rebuild from the vectors, silently: a snapshot that carries an unusable index was not written as it is."""
    match = SNAPSHOT.match(path.name)
    assert match is not None  # unpack takes no other index name
    index = VectorIndex(collection["dimension"], collection["metric"], IndexParams(**collection["index"]))
    try:
        if not index.load(Snapshot(path, int(match.group(1)), int(match.group(2)))):
            raise SnapshotInvalid(f"{path.name} is not a usable index of this collection: the file is damaged")
    finally:
        index.close()


def check_database(path: Path, dimension: int, documents: int) -> None:
    """The restored database is sound SQLite, holds AkiDB's schema and nothing more, the manifest's number of
    documents, and float32 vectors of the collection's dimension (see the module's docstring)."""
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise SnapshotInvalid(f"{path.name} cannot be opened ({exc}): the file is damaged or not a snapshot") from None
    try:
        # Before anything reads the schema: no function named in it may run while we look.
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA cell_size_check=ON")
        problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            raise SnapshotInvalid(f"{path.name} fails SQLite's integrity check ({problems[0]}): the file is damaged")
        _check_schema(path.name, frozenset(_row(r) for r in conn.execute(SCHEMA_QUERY)))
        _check_rows(conn, path.name, dimension, documents)
    except sqlite3.Error as exc:
        raise SnapshotInvalid(f"{path.name} is not a sound SQLite database ({exc}): the file is damaged") from None
    finally:
        conn.close()


def _check_rows(conn: sqlite3.Connection, name: str, dimension: int, documents: int) -> None:
    """What opening the collection relies on: every vector is `dimension` float32s; the count the manifest gives."""
    count = int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
    if count != documents:
        raise SnapshotInvalid(f"{name} holds {count} documents, the manifest says {documents}: the file was altered")
    bad = conn.execute(
        "SELECT COUNT(*) FROM vectors WHERE typeof(vector) != 'blob' OR length(vector) != ?", (4 * dimension,)
    ).fetchone()[0]
    if bad:
        raise SnapshotInvalid(f"{name} holds {bad} vectors that are not {dimension} float32s: the file was altered")


def _check_schema(name: str, rows: frozenset[SchemaRow] | set[SchemaRow]) -> None:
    """The documents' tables, plus the full-text index and re-embedding's tables, each whole or absent."""
    documents, *optional = schema_groups()
    extra = rows - documents.union(*optional)
    if extra:
        kind, thing = sorted(extra, key=str)[0][:2]
        raise SnapshotInvalid(
            f"{name} holds {kind} {thing!r}, which AkiDB does not create: this is not an AkiDB snapshot "
            "(an altered one would run it inside the gateway)"
        )
    for group in (documents, *(g for g in optional if rows & g)):
        missing = group - rows
        if missing:
            kind, thing = sorted(missing, key=str)[0][:2]
            raise SnapshotInvalid(f"{name} lacks {kind} {thing!r}: this is not an AkiDB collection database")


@functools.cache
def schema_groups() -> tuple[frozenset[SchemaRow], frozenset[SchemaRow], frozenset[SchemaRow]]:
    """The objects AkiDB creates in a collection database, by what creates them: the documents' own tables
    (always), the full-text index (databases older than it lack it), re-embedding's tables (once a job ran)."""
    from gateway.storage.reembed import SCHEMA as REEMBED_SCHEMA  # here: reembed imports the collection

    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        documents = _schema_after(conn, lambda: conn.executescript(DOCUMENTS_SCHEMA), frozenset())
        words = _schema_after(conn, lambda: fulltext.ensure(conn), documents)
        reembed = _schema_after(conn, lambda: conn.executescript(REEMBED_SCHEMA), documents | words)
    finally:
        conn.close()
    return documents, words, reembed


def _schema_after(
    conn: sqlite3.Connection, make: Callable[[], object], before: frozenset[SchemaRow]
) -> frozenset[SchemaRow]:
    make()
    return frozenset(_row(r) for r in conn.execute(SCHEMA_QUERY)) - before


def _row(row: tuple[str, str, str, str | None]) -> SchemaRow:
    kind, name, table, sql = row
    return kind, name, table, None if sql is None else re.sub(r"\s+", " ", sql).strip()
