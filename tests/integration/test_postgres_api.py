"""The PostgreSQL engine through the HTTP API, where it differs from the embedded one or where only it can be
tested: several gateways on one database, what it cannot do yet (501 naming it), its DSN kept secret.
Snapshots run on both engines in test_snapshots_api.py; moving between them is test_engine_migration.py's.

Everything both engines do alike runs against both from the `engine` fixture (`BOTH_ENGINES` in
test_collections_api.py, test_hybrid_search.py); these tests are about this engine alone, by design.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import conninfo

from gateway.api import keys
from gateway.storage.errors import StorageError
from tests.integration.test_collections_api import get, post
from tests.support.gateway import GatewayFactory, eventually, make_config, running_gateway
from tests.support.logs import captured_logs

ON_POSTGRES = pytest.mark.parametrize("engine", ["postgres"], indirect=True)

DIM = 8
SPEC = {"dimension": DIM, "model": "all-MiniLM-L6-v2"}  # the model is known: no worker is asked


def vector(seed: int) -> list[float]:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32).tolist()


@ON_POSTGRES
async def test_fts5_query_syntax_is_a_400_naming_the_field(start_gateway: GatewayFactory) -> None:
    """SQLite's query language on a PostgreSQL collection is a request to change, not a server fault."""
    async with start_gateway() as gw:
        await post(gw, "/collections", {"name": "c", **SPEC}, 201)
        body = {"query": "cat", "mode": "keyword", "keyword_syntax": "fts5"}
        err = await post(gw, "/collections/c/search", body, 400)
        assert err["error"]["code"] == "invalid_input" and "keyword_syntax" in err["error"]["message"], err
        assert "storage.backend postgres" in err["error"]["message"], err


@ON_POSTGRES
async def test_a_nul_character_is_a_400_not_a_500(start_gateway: GatewayFactory) -> None:
    """PostgreSQL's text and jsonb cannot hold U+0000 (SQLite can): refused, naming the engine."""
    async with start_gateway() as gw:
        await post(gw, "/collections", {"name": "c", **SPEC}, 201)
        for doc in (
            {"id": "a", "text": "a\x00b", "vector": vector(1)},
            {"vector": vector(2), "metadata": {"k": "\x00"}},
        ):
            err = await post(gw, "/collections/c/documents", doc, 400)
            assert "storage.backend postgres" in err["error"]["message"]
        assert (await get(gw, "/collections/c"))["document_count"] == 0  # nothing of a refused batch stored


@ON_POSTGRES
async def test_two_gateways_on_one_database_one_create_wins(
    endpoint: str, tmp_path: Path, engine_settings: tuple[str, ...]
) -> None:
    """Both gateways create one name at once: one 201 and one 409; each then sees the other's documents."""
    one = running_gateway(make_config(endpoint, str(tmp_path / "one"), *engine_settings))
    other_endpoint = endpoint.rsplit(":", 1)[0] + ":" + str(int(endpoint.rsplit(":", 1)[1]) + 1)
    two = running_gateway(make_config(other_endpoint, str(tmp_path / "two"), *engine_settings))
    async with one as a, two as b:
        results = await asyncio.gather(
            *(gw.client.post("/collections", json={"name": "shared", **SPEC}) for gw in (a, b))
        )
        assert sorted(r.status for r in results) == [201, 409]
        winner, loser = (a, b) if results[0].status == 201 else (b, a)
        # The loser's view catches up on the winner's NOTIFY (or its next generation check).
        await eventually(lambda: loser.app[keys.COLLECTIONS].catalogue.find("shared") is not None)
        await post(winner, "/collections/shared/documents", {"id": "x", "vector": vector(3)}, 201)
        await post(loser, "/collections/shared/documents", {"id": "y", "vector": vector(4)}, 201)
        for gw in (a, b):
            listed = (await get(gw, "/collections/shared/documents"))["documents"]
            assert [d["id"] for d in listed] == ["x", "y"]
        # A delete through one is seen by the other: its next request for the collection is a 404.
        resp = await winner.client.delete("/collections/shared")
        assert resp.status == 200
        await eventually(lambda: loser.app[keys.COLLECTIONS].catalogue.find("shared") is None)
        await post(loser, "/collections/shared/search", {"vector": vector(3)}, 404)


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Every log line the process writes from here on, through the gateway's own logging set-up (JSON lines)."""
    yield from captured_logs(monkeypatch)


async def test_an_unreachable_database_stops_the_start_without_its_password(
    tmp_path: Path, endpoint: str, logged: io.StringIO
) -> None:
    dsn = conninfo.make_conninfo("host=127.0.0.1 port=1 dbname=akidb user=akidb password=hunter2 connect_timeout=2")
    cfg = make_config(endpoint, str(tmp_path), "storage.backend=postgres", f"storage.postgres.dsn={dsn}")
    with pytest.raises(StorageError) as caught:
        async with running_gateway(cfg):
            pass
    assert "unreachable" in str(caught.value) and "hunter2" not in str(caught.value)
    assert "hunter2" not in logged.getvalue()


@ON_POSTGRES
async def test_the_dsn_password_reaches_no_log_line_and_no_error_body(
    tmp_path: Path, endpoint: str, engine_settings: tuple[str, ...], logged: io.StringIO
) -> None:
    """A gateway on a DSN with a password (the test server trusts local connections, so any password is let in)
    through its start, a value PostgreSQL refuses, its connections killed under it (pool and LISTEN errors), and
    a snapshot and restore: the password is in no log line and no response."""
    secret = "pw-" + "x7" * 10
    dsn = conninfo.make_conninfo(engine_settings[1].split("=", 1)[1], password=secret)
    assert secret in dsn and "password=" in dsn  # the key=value form, which the URL shape does not cover
    cfg = make_config(endpoint, str(tmp_path), "storage.backend=postgres", f"storage.postgres.dsn={dsn}")
    bodies: list[str] = []
    async with running_gateway(cfg) as gw:
        await post(gw, "/collections", {"name": "c", **SPEC}, 201)
        resp = await gw.client.post("/collections/c/documents", json={"id": "a", "text": "a\x00b", "vector": vector(1)})
        assert resp.status == 400
        bodies.append(await resp.text())
        await post(gw, "/collections/c/documents", {"id": "b", "text": "b", "vector": vector(2)}, 201)
        with psycopg.connect(dsn, autocommit=True) as admin:  # every other connection to the database goes
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        statuses = []
        for _ in range(3):  # the pool hands out a dead connection at least once: a 503 that names no password
            resp = await gw.client.post("/collections/c/search", json={"vector": vector(3)})
            statuses.append(resp.status)
            bodies.append(await resp.text())
        assert 503 in statuses, statuses
        resp = await gw.client.post("/collections/c/snapshots")
        bodies.append(await resp.text())
        await eventually(lambda: "catalogue_watch_lost" in logged.getvalue())
    text = logged.getvalue()
    assert "postgres_catalogue_opened" in text and "password=[redacted]" in text  # the DSN was logged, hidden
    assert secret not in text
    assert not [b for b in bodies if secret in b]
    assert any("unreachable" in b or "storage_unavailable" in b for b in bodies), bodies
