"""Collection snapshots and restore through the HTTP API of a real gateway (in-process, real disk), on both
storage engines (embedded: real SQLite; postgres: a real server). Moving a collection between engines is
test_engine_migration.py's.

No worker: the collections take user vectors, so these tests are about storage, not embedding.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.api import keys
from shared.config import ApiKeyEntry, key_digest
from tests.support.engines import BOTH_ENGINES
from tests.support.gateway import Gateway, eventually, make_config, running_gateway
from tests.support.postgres import fresh_database
from tests.support.processes import free_port

pytestmark = BOTH_ENGINES

DIM = 32
OCTETS = {"Content-Type": "application/octet-stream"}


def vector(i: int) -> list[float]:
    return np.random.default_rng(i).standard_normal(DIM).astype(np.float32).tolist()


def doc(i: int) -> dict[str, Any]:
    """A document whose every field follows from i, so a torn or mixed-up one is seen."""
    text = f"document {i} " + "lorem ipsum " * (i % 7)
    return {
        "id": f"d{i}",
        "text": text,
        "metadata": {"i": i, "sha": hashlib.sha256(text.encode()).hexdigest()},
        "vector": vector(i),
    }


@pytest.fixture
async def gw(tmp_path: Path, engine_settings: tuple[str, ...]) -> AsyncIterator[Gateway]:
    cfg = make_config(
        f"tcp://127.0.0.1:{free_port()}",
        str(tmp_path / "data"),
        "storage.max_restore_bytes=4000000",
        "storage.snapshot_rate_mb_s=1",  # a snapshot of the 2,000 documents below takes about a second
        *engine_settings,
    )
    async with running_gateway(cfg) as gw:
        resp = await gw.client.post("/collections", json={"name": "c", "dimension": DIM, "metric": "l2"})
        assert resp.status == 201, await resp.text()
        yield gw


async def insert(gw: Gateway, docs: list[dict[str, Any]], collection: str = "c") -> None:
    for start in range(0, len(docs), 500):
        resp = await gw.client.post(
            f"/collections/{collection}/documents", json={"documents": docs[start : start + 500]}
        )
        assert resp.status == 201, await resp.text()


async def snapshot_bytes(gw: Gateway, collection: str = "c") -> tuple[dict[str, Any], bytes]:
    resp = await gw.client.post(f"/collections/{collection}/snapshots")
    assert resp.status == 201, await resp.text()
    info = await resp.json()
    resp = await gw.client.get(f"/collections/{collection}/snapshots/{info['name']}")
    assert resp.status == 200 and resp.content_type == "application/octet-stream"
    assert info["name"] in resp.headers["Content-Disposition"]
    return info, await resp.read()


async def restore(gw: Gateway, data: bytes, name: str) -> tuple[int, dict[str, Any]]:
    resp = await gw.client.post("/collections/restore", params={"name": name}, data=io.BytesIO(data), headers=OCTETS)
    return resp.status, await resp.json()


async def all_documents(gw: Gateway, collection: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    after = "0"
    while True:
        resp = await gw.client.get(
            f"/collections/{collection}/documents", params={"limit": "500", "after": after, "include_vector": "true"}
        )
        page = await resp.json()
        out.update({d["id"]: d for d in page["documents"]})
        if page["next"] is None:
            return out
        after = page["next"]


async def test_a_snapshot_under_concurrent_inserts_restores_every_acknowledged_document_intact(gw: Gateway) -> None:
    await insert(gw, [doc(i) for i in range(2000)])  # enough that the copy takes a while
    acknowledged: list[int] = []
    stop = asyncio.Event()

    async def writer() -> None:
        i = 100_000
        while not stop.is_set():
            batch = [doc(j) for j in range(i, i + 25)]
            await insert(gw, batch)
            acknowledged.extend(range(i, i + 25))
            i += 25

    task = asyncio.create_task(writer())
    await eventually(lambda: len(acknowledged) >= 100)
    before = set(acknowledged)  # acknowledged before the snapshot began
    info, data = await snapshot_bytes(gw)
    during = len(acknowledged)
    stop.set()
    await task
    assert during > len(before), "no insert was acknowledged during the snapshot: nothing was tested"

    status, body = await restore(gw, data, "copy")
    assert status == 201, body
    assert body["name"] == "copy" and body["id"] != (await (await gw.client.get("/collections/c")).json())["id"]
    assert (body["dimension"], body["metric"]) == (DIM, "l2")
    restored = await all_documents(gw, "copy")
    expected = {f"d{i}" for i in range(2000)} | {f"d{i}" for i in before}
    assert expected <= set(restored), f"missing {sorted(expected - set(restored))[:5]}"
    assert set(restored) <= {f"d{i}" for i in range(2000)} | {f"d{i}" for i in acknowledged}
    assert len(restored) == info["documents"] == body["document_count"]
    for got in restored.values():
        want = doc(int(got["id"][1:]))
        assert (got["text"], got["metadata"]) == (want["text"], want["metadata"]), got["id"]
        assert np.allclose(got["vector"], want["vector"], atol=1e-6), got["id"]
    # The restored index finds each document by its own vector.
    for i in (0, 1999, max(before)):
        resp = await gw.client.post("/collections/copy/search", json={"vector": vector(i), "k": 1})
        assert (await resp.json())["results"][0]["id"] == f"d{i}"


async def test_list_download_delete_and_what_each_refuses(gw: Gateway) -> None:
    await insert(gw, [doc(i) for i in range(50)])
    first, data = await snapshot_bytes(gw)
    second, _ = await snapshot_bytes(gw)
    listed = (await (await gw.client.get("/collections/c/snapshots")).json())["snapshots"]
    assert [s["name"] for s in listed] == [first["name"], second["name"]]
    assert listed[0] == first and first["size"] == len(data) and first["documents"] == 50
    resp = await gw.client.delete(f"/collections/c/snapshots/{first['name']}")
    assert resp.status == 200 and await resp.json() == {"name": first["name"], "deleted": True}
    for method in ("get", "delete"):
        resp = await getattr(gw.client, method)(f"/collections/c/snapshots/{first['name']}")
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "snapshot_not_found"
    for path in ("/collections/nope/snapshots", f"/collections/nope/snapshots/{second['name']}"):
        assert (await gw.client.get(path)).status == 404
    assert (await gw.client.post("/collections/nope/snapshots")).status == 404

    # Restore refuses, and creates nothing: an existing name, no name, another media type, too big.
    status, body = await restore(gw, data, "c")
    assert status == 409 and body["error"]["code"] == "collection_exists"
    assert (await gw.client.post("/collections/restore", data=io.BytesIO(data), headers=OCTETS)).status == 400
    resp = await gw.client.post(
        "/collections/restore", params={"name": "x"}, data=io.BytesIO(data), headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 415 and "application/octet-stream" in (await resp.json())["error"]["message"]
    status, body = await restore(gw, b"\0" * 4_000_001, "x")
    assert status == 413 and "storage.max_restore_bytes" in body["error"]["message"]
    names = [c["name"] for c in (await (await gw.client.get("/collections")).json())["collections"]]
    assert names == ["c"]

    # A snapshot outlives its collection: restore under the old name after a delete.
    assert (await gw.client.delete("/collections/c")).status == 200
    status, body = await restore(gw, data, "c")
    assert status == 201 and body["document_count"] == 50
    assert [s["name"] for s in (await (await gw.client.get("/collections/c/snapshots")).json())["snapshots"]] == [
        second["name"]
    ]


@pytest.mark.parametrize("damage", ["altered", "truncated", "garbage"])
async def test_a_damaged_snapshot_is_a_400_that_says_so_and_creates_nothing(
    gw: Gateway, damage: str, engine: str
) -> None:
    await insert(gw, [doc(i) for i in range(300)])
    _, data = await snapshot_bytes(gw)
    if damage == "altered":
        bad = bytearray(data)
        bad[len(data) // 3] ^= 0x20
        data, says = bytes(bad), "altered"
    elif damage == "truncated":
        data, says = data[: len(data) * 2 // 3], "truncated"
    else:
        data, says = b"not a snapshot at all" * 100, "not an AkiDB snapshot"
    status, body = await restore(gw, data, "copy")
    assert status == 400 and body["error"]["code"] == "invalid_snapshot", body
    assert says in body["error"]["message"]
    assert (await gw.client.get("/collections/copy")).status == 404
    collections = [c["name"] for c in (await (await gw.client.get("/collections")).json())["collections"]]
    assert collections == ["c"]
    data_dir = Path(gw.app[keys.CONFIG].storage.data_dir)
    if engine == "embedded":  # the postgres engine keeps no collection folders; its transaction was rolled back
        assert len(list((data_dir / "collections").iterdir())) == 1  # no half-made folder left behind
    assert [p.name for p in (data_dir / "snapshots").iterdir()] == ["c"]  # nor the uploaded file, nor its unpacking


async def test_snapshots_and_restore_need_the_admin_scope(tmp_path: Path, engine_settings: tuple[str, ...]) -> None:
    keys = {"w": "wk-snap-writer", "a": "ak-snap-admin"}
    cfg = make_config(f"tcp://127.0.0.1:{free_port()}", str(tmp_path / "data"), *engine_settings)
    entries = (
        ApiKeyEntry("w", key_digest(keys["w"]), ("read", "write")),
        ApiKeyEntry("a", key_digest(keys["a"]), ("admin",)),
    )
    cfg = dataclasses.replace(cfg, auth=dataclasses.replace(cfg.auth, keys=entries))
    async with running_gateway(cfg) as gw:
        admin, writer = ({"Authorization": f"Bearer {keys[k]}"} for k in ("a", "w"))
        body = {"name": "c", "dimension": DIM}
        assert (await gw.client.post("/collections", json=body, headers=admin)).status == 201
        resp = await gw.client.post("/collections/c/snapshots", headers=writer)
        assert resp.status == 403 and "'admin'" in (await resp.json())["error"]["message"]
        resp = await gw.client.post("/collections/c/snapshots", headers=admin)
        assert resp.status == 201
        name = (await resp.json())["name"]
        for method, path in [
            ("get", "/collections/c/snapshots"),
            ("get", f"/collections/c/snapshots/{name}"),
            ("delete", f"/collections/c/snapshots/{name}"),
            ("post", "/collections/restore?name=x"),
        ]:
            resp = await getattr(gw.client, method)(path, headers={**writer, **OCTETS})
            assert resp.status == 403, (method, path)
        assert (await gw.client.get("/collections/c/snapshots", headers=admin)).status == 200
        assert json.loads(await (await gw.client.get("/collections/c/snapshots")).text())["error"]["code"] == (
            "unauthorized"
        )


async def test_with_an_hmac_key_only_snapshots_signed_with_that_key_restore(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    """Checksums catch damage; the HMAC catches edits: a snapshot edited with every sum recomputed is refused."""
    from tests.integration.test_snapshot_mutations import Snapshot, execute, pack, with_database

    def gateway(name: str, *key: str) -> Any:
        settings: tuple[str, ...] = ()
        if engine == "postgres":  # a database of its own per gateway, as the data directory is on the other
            dsn = fresh_database(request.getfixturevalue("postgres_server"))
            settings = ("storage.backend=postgres", f"storage.postgres.dsn={dsn}")
        cfg = make_config(f"tcp://127.0.0.1:{free_port()}", str(tmp_path / name), *key, *settings)
        return running_gateway(cfg)

    async def snapshot_of(gw: Gateway) -> bytes:
        assert (await gw.client.post("/collections", json={"name": "c", "dimension": DIM})).status == 201
        await insert(gw, [doc(i) for i in range(20)])
        return (await snapshot_bytes(gw))[1]

    key, other = "k" * 40, "o" * 40
    async with gateway("plain") as gw:
        unsigned = await snapshot_of(gw)
    async with gateway("signed", f"storage.snapshot_hmac_key={key}") as gw:
        signed = await snapshot_of(gw)
        with tarfile.open(fileobj=io.BytesIO(signed)) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
        assert list(members)[-1] == "manifest.hmac"
        status, body = await restore(gw, signed, "copy")
        assert status == 201, body
        edited = with_database(Snapshot(members, signed), execute("UPDATE documents SET text = 'edited'"))
        stripped = {name: data for name, data in members.items() if name != "manifest.hmac"}
        for data, refusal in [
            (pack(edited, forge=True), "manifest.hmac does not match"),
            (pack(stripped, forge=True), "carries no manifest.hmac"),
            (unsigned, "carries no manifest.hmac"),
        ]:
            status, body = await restore(gw, data, "forged")
            assert (status, body["error"]["code"]) == (400, "invalid_snapshot"), body
            assert refusal in body["error"]["message"]
        assert [c["name"] for c in (await (await gw.client.get("/collections")).json())["collections"]] == [
            "c",
            "copy",
        ]
    async with gateway("other", f"storage.snapshot_hmac_key={other}") as gw:
        status, body = await restore(gw, signed, "copy")
        assert status == 400 and "made with another storage.snapshot_hmac_key" in body["error"]["message"]
    async with gateway("plain") as gw:  # a gateway without a key restores a signed snapshot (the HMAC unchecked)
        status, body = await restore(gw, signed, "copy")
        assert status == 201, body


async def test_a_snapshot_from_before_the_manifest_named_its_engine_still_restores(gw: Gateway) -> None:
    """Files written before `engine` was recorded (the embedded engine's) restore on both engines; a manifest
    naming an engine AkiDB does not have is refused."""
    from tests.integration.test_snapshot_mutations import pack

    await insert(gw, [doc(i) for i in range(40)])
    _, data = await snapshot_bytes(gw)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    manifest = json.loads(members["manifest.json"])
    assert manifest["engine"] == gw.app[keys.CONFIG].storage.backend
    for engine, status in [(None, 201), ("oracle", 400)]:
        edited = {k: v for k, v in manifest.items() if k != "engine"} | ({} if engine is None else {"engine": engine})
        older = pack({**members, "manifest.json": json.dumps(edited, sort_keys=True).encode()}, forge=True)
        got, body = await restore(gw, older, f"old-{status}")
        assert got == status, body
    assert len(await all_documents(gw, "old-201")) == 40
    assert "names no storage engine" in body["error"]["message"]
