"""API keys: the key table, the scope table, and the middleware on the real app (no worker needed)."""

from __future__ import annotations

import hmac
import json

import pytest
import structlog
from aiohttp import web

from gateway.api import auth
from gateway.api.auth import ADMIN, ANY_KEY, GRPC, OPEN_ROUTES, READ, ROUTE_SCOPES, WRITE, KeyTable, Rules
from gateway.app import create_app
from gateway.errors import Forbidden, Unauthorized
from shared.config import ApiKeyEntry, key_digest
from tests.support.gateway import GatewayFactory, make_config

KEYS = {"reader": "r-secret-key", "writer": "w-secret-key", "ops": "a-secret-key"}
ENTRIES = (
    ApiKeyEntry("reader", key_digest(KEYS["reader"]), (READ,)),
    ApiKeyEntry("writer", key_digest(KEYS["writer"]), (READ, WRITE)),
    ApiKeyEntry("ops", key_digest(KEYS["ops"]), (READ, WRITE, ADMIN)),
)
KEYS_SETTING = "auth.keys=" + json.dumps(
    [{"name": e.name, "sha256": e.sha256, "scopes": list(e.scopes)} for e in ENTRIES]
)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


# ---- the key table -------------------------------------------------------------------------------


def test_lookup_finds_the_entry_by_its_digest_and_nothing_else() -> None:
    table = KeyTable(ENTRIES)
    assert table.lookup(KEYS["writer"]) == ENTRIES[1]
    assert table.lookup("w-secret-ke") is None
    assert table.lookup("") is None
    assert table.enabled and not KeyTable(()).enabled


def test_lookup_is_one_constant_time_digest_comparison_whatever_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    # A thousand keys: found by digest, not by a comparison with each (that would put ~1000 calls on every request).
    many = [ApiKeyEntry(f"k{i}", key_digest(f"key-{i}"), (READ,)) for i in range(1000)]
    table = KeyTable([*ENTRIES, *many])
    for key, found in ((KEYS["reader"], ENTRIES[0]), ("key-999", many[-1]), ("unknown", None)):
        calls.clear()
        assert table.lookup(key) == found
        # Known or not, the same work: one comparison of two 32-byte digests.
        assert len(calls) == 1 and all(len(a) == len(b) == 32 for a, b in calls)


def test_two_records_with_one_digest_resolve_to_the_first() -> None:
    twin = ApiKeyEntry("twin", ENTRIES[0].sha256, (ADMIN,))
    assert KeyTable([ENTRIES[0], twin]).lookup(KEYS["reader"]) == ENTRIES[0]


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_reads_only_the_bearer_scheme(header: str | None, token: str | None) -> None:
    assert auth.bearer(header) == token


# ---- the scope table -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "route", "scope"),
    [
        ("POST", "/embed", READ),
        ("POST", "/v1/embeddings", READ),
        ("GET", "/v1/models", READ),
        ("HEAD", "/collections", READ),
        ("POST", "/collections/{collection}/search", READ),
        ("POST", "/collections/{collection}/documents", WRITE),
        ("DELETE", "/collections/{collection}/documents/{doc_id}", WRITE),
        ("POST", "/collections", ADMIN),
        ("DELETE", "/collections/{collection}", ADMIN),
        ("POST", "/collections/{collection}/reembed", ADMIN),
        ("GET", "/collections/{collection}/jobs/{job_id}", ADMIN),
        ("DELETE", "/collections/{collection}/jobs/{job_id}", ADMIN),
        ("POST", "/collections/{collection}/snapshots", ADMIN),
        ("GET", "/collections/{collection}/snapshots", ADMIN),
        ("GET", "/collections/{collection}/snapshots/{name}", ADMIN),
        ("DELETE", "/collections/{collection}/snapshots/{name}", ADMIN),
        ("POST", "/collections/restore", ADMIN),
        ("POST", "/snapshots", ADMIN),  # not in the table: closed until someone places it
        ("GET", "/health", None),
        ("GET", "/ready", None),
        ("GET", "/docs", None),
        ("GET", "/openapi.json", None),
        ("GET", "/metrics", READ),
        ("GET", "/ui/static/{file}", None),
        ("GET", "/docs/{file}", None),
        ("GET", None, ANY_KEY),
        (GRPC, "/akidb.embedding.EmbeddingService/Embed", READ),
        (GRPC, "/akidb.embedding.EmbeddingService/GetModelInfo", READ),
        (GRPC, "/akidb.embedding.EmbeddingService/Reembed", ADMIN),
        (GRPC, "/grpc.health.v1.Health/Check", None),
        (GRPC, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None),
    ],
)
def test_scope_for_each_route(method: str, route: str | None, scope: str | None) -> None:
    assert Rules(KeyTable(ENTRIES)).scope_for(method, route) == scope


def test_open_metrics_opens_metrics_to_anyone() -> None:
    assert Rules(KeyTable(ENTRIES), open_metrics=True).scope_for("GET", "/metrics") is None


def test_every_route_the_app_serves_is_placed_in_the_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(make_config("tcp://127.0.0.1:1", str(tmp_path)))
    served = {
        (r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None and r.method != "HEAD"
    }
    placed = {(m, p) for m, p in ROUTE_SCOPES if m != GRPC}
    assert served - placed <= {("GET", p) for p in OPEN_ROUTES}, "a new route: give it a scope in ROUTE_SCOPES"
    assert placed <= served, "a ROUTE_SCOPES row names no route the app serves"


def test_identify_and_authorize_refuse_with_the_right_errors() -> None:
    rules = Rules(KeyTable(ENTRIES))
    with pytest.raises(Unauthorized) as missing:
        rules.identify(None)
    assert missing.value.headers["WWW-Authenticate"] == 'Bearer realm="akidb"'
    with pytest.raises(Unauthorized) as wrong:
        rules.identify("Bearer nope")
    assert "invalid_token" in wrong.value.headers["WWW-Authenticate"]
    entry = rules.identify(f"Bearer {KEYS['reader']}")
    auth.authorize(entry, READ, "POST /embed")
    with pytest.raises(Forbidden) as denied:
        auth.authorize(entry, WRITE, "POST /collections/{collection}/documents")
    assert "'write'" in denied.value.message and "reader" in denied.value.message


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True), ("0.0.0.0", False), ("db.lan", False)],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert auth.is_loopback(host) is loopback


def test_no_keys_on_a_public_address_warns_at_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with structlog.testing.capture_logs() as logs:
        create_app(make_config("tcp://127.0.0.1:1", str(tmp_path), "server.host=0.0.0.0"))
        create_app(make_config("tcp://127.0.0.1:1", str(tmp_path), "server.host=127.0.0.1"))
        create_app(make_config("tcp://127.0.0.1:1", str(tmp_path), "server.host=0.0.0.0", KEYS_SETTING))
    events = [(e["event"], e["log_level"]) for e in logs]
    assert events.count(("auth_disabled", "warning")) == 1
    assert ("auth_enabled", "info") in events


# ---- the middleware on the real app ----------------------------------------------------------------


async def test_keys_off_leaves_every_route_open(gw) -> None:  # type: ignore[no-untyped-def]
    resp = await gw.client.get("/collections")
    assert resp.status == 200


async def test_refusals_are_401_or_403_in_our_body_shape(start_gateway: GatewayFactory) -> None:
    async with start_gateway(KEYS_SETTING) as gw:
        resp = await gw.client.get("/collections")
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await resp.json())["error"]["code"] == "unauthorized"

        resp = await gw.client.get("/collections", headers={"Authorization": "Bearer wrong"})
        assert resp.status == 401
        assert "wrong" not in await resp.text()

        resp = await gw.client.post("/collections", json={"name": "c", "dimension": 3}, headers=bearer("writer"))
        assert resp.status == 403
        error = (await resp.json())["error"]
        assert error["code"] == "forbidden" and "'admin'" in error["message"]

        resp = await gw.client.post("/collections", json={"name": "c", "dimension": 3}, headers=bearer("ops"))
        assert resp.status == 201, await resp.text()
        resp = await gw.client.get("/collections/c", headers=bearer("reader"))
        assert resp.status == 200


async def test_open_routes_need_no_key_and_metrics_need_read_unless_opened(start_gateway: GatewayFactory) -> None:
    async with start_gateway(KEYS_SETTING) as gw:
        assert (await gw.client.get("/health")).status == 200
        assert (await gw.client.get("/ready")).status == 503  # open: no worker, not "no key"
        assert (await gw.client.get("/metrics")).status == 401
        assert (await gw.client.get("/metrics", headers=bearer("reader"))).status == 200
    async with start_gateway(KEYS_SETTING, "auth.open_metrics=true") as gw:
        assert (await gw.client.get("/metrics")).status == 200


async def test_without_keys_metrics_stay_open(gw) -> None:  # type: ignore[no-untyped-def]
    assert (await gw.client.get("/metrics")).status == 200


async def test_an_unknown_path_needs_a_key_before_it_is_a_404(start_gateway: GatewayFactory) -> None:
    async with start_gateway(KEYS_SETTING) as gw:
        assert (await gw.client.get("/nowhere")).status == 401
        assert (await gw.client.get("/nowhere", headers=bearer("reader"))).status == 404
        assert (await gw.client.put("/embed", headers=bearer("reader"))).status == 405


async def test_openai_routes_refuse_in_openai_shape(start_gateway: GatewayFactory) -> None:
    async with start_gateway(KEYS_SETTING) as gw:
        resp = await gw.client.post("/v1/embeddings", json={"input": "x", "model": "m"})
        assert resp.status == 401
        assert (await resp.json())["error"]["type"] == "authentication_error"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_refusals_and_admin_actions_are_audited_without_secrets(start_gateway: GatewayFactory) -> None:
    async with start_gateway(KEYS_SETTING) as gw:
        with structlog.testing.capture_logs() as logs:
            await gw.client.get("/collections", headers={"Authorization": "Bearer not-a-key"})
            await gw.client.delete("/collections/c", headers=bearer("reader"))
            await gw.client.post("/collections", json={"name": "c", "dimension": 3}, headers=bearer("ops"))
            await gw.client.delete("/collections/missing", headers=bearer("ops"))
    audit = [e for e in logs if e["event"] in ("auth_refused", "admin_action")]
    assert [(e["event"], e["key"], e["outcome"]) for e in audit] == [
        ("auth_refused", "anonymous", 401),
        ("auth_refused", "reader", 403),
        ("admin_action", "ops", 201),
        ("admin_action", "ops", 404),
    ]
    assert all(e["remote"] == "127.0.0.1" and e["route"] for e in audit)
    text = repr(logs)
    assert not any(secret in text for secret in [*KEYS.values(), "not-a-key", "Bearer"])


def test_the_middleware_is_added_only_when_keys_are_configured(tmp_path) -> None:  # type: ignore[no-untyped-def]
    off = create_app(make_config("tcp://127.0.0.1:1", str(tmp_path)))
    on = create_app(make_config("tcp://127.0.0.1:1", str(tmp_path), KEYS_SETTING))
    assert len(on.middlewares) == len(off.middlewares) + 1
    assert isinstance(on, web.Application)


# ---- keys scoped to collections ----------------------------------------------------------------------

TEAM_A = ApiKeyEntry("team-a", key_digest("team-a-key"), (READ, WRITE, ADMIN), ("team-a-*", "shared"))
SCOPED_SETTING = "auth.keys=" + json.dumps(
    [{"name": e.name, "sha256": e.sha256, "scopes": list(e.scopes)} for e in ENTRIES]
    + [
        {
            "name": TEAM_A.name,
            "sha256": TEAM_A.sha256,
            "scopes": list(TEAM_A.scopes),
            "collections": ["team-a-*", "shared"],
        }
    ]
)
TEAM_A_KEY = {"Authorization": "Bearer team-a-key"}


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("team-a-docs", True),
        ("team-a-", True),
        ("shared", True),
        ("team-b-docs", False),
        ("xteam-a-docs", False),  # a pattern matches the whole name, not a part of it
        ("shared2", False),
        ("TEAM-A-docs", False),  # case-sensitive, whatever the platform
        ("team-a", False),
    ],
)
def test_a_scoped_key_allows_only_names_its_patterns_match(name: str, allowed: bool) -> None:
    table = KeyTable([*ENTRIES, TEAM_A])
    assert table.allows(TEAM_A, name) is allowed
    assert table.allows(ENTRIES[2], name)  # no `collections`: every collection


def test_glob_classes_and_single_characters() -> None:
    entry = ApiKeyEntry("k", key_digest("k"), (READ,), ("log-20[0-9][0-9]", "t?"))
    table = KeyTable([entry])
    assert table.allows(entry, "log-2024") and table.allows(entry, "t1")
    assert not table.allows(entry, "log-20ab") and not table.allows(entry, "t12")


async def test_a_scoped_key_creates_sees_and_touches_only_its_collections(start_gateway: GatewayFactory) -> None:
    async with start_gateway(SCOPED_SETTING) as gw:
        c = gw.client
        own = await c.post("/collections", json={"name": "team-a-docs", "dimension": 3}, headers=TEAM_A_KEY)
        assert own.status == 201
        own_id = (await own.json())["id"]
        assert (await c.get(f"/collections/{own_id}", headers=TEAM_A_KEY)).status == 200  # its own, by id
        resp = await c.post("/collections", json={"name": "team-b-docs", "dimension": 3}, headers=TEAM_A_KEY)
        assert resp.status == 403
        error = (await resp.json())["error"]
        assert error["code"] == "forbidden"
        assert (
            "'team-a'" in error["message"] and "'team-a-*'" in error["message"] and "'team-b-docs'" in error["message"]
        )
        resp = await c.post("/collections", json={"name": "team-b-docs", "dimension": 3}, headers=bearer("ops"))
        assert resp.status == 201
        other_id = (await resp.json())["id"]

        listed = await (await c.get("/collections", headers=TEAM_A_KEY)).json()
        assert [col["name"] for col in listed["collections"]] == ["team-a-docs"]
        everything = await (await c.get("/collections", headers=bearer("ops"))).json()
        assert {col["name"] for col in everything["collections"]} == {"team-a-docs", "team-b-docs"}

        # Another team's collection, by name or by id, and one that does not exist: 403, never 404.
        for ref in ("team-b-docs", other_id, "team-b-missing"):
            resp = await c.get(f"/collections/{ref}", headers=TEAM_A_KEY)
            assert resp.status == 403, ref
        doc = {"documents": [{"id": "d", "vector": [1, 0, 0]}]}
        assert (await c.post("/collections/team-b-docs/documents", json=doc, headers=TEAM_A_KEY)).status == 403
        assert (await c.delete("/collections/team-b-docs", headers=TEAM_A_KEY)).status == 403
        assert (await c.post("/collections/team-b-docs/snapshots", headers=TEAM_A_KEY)).status == 403
        # Its own: allowed, and a missing one of its own is an honest 404.
        assert (await c.post("/collections/team-a-docs/documents", json=doc, headers=TEAM_A_KEY)).status == 201
        assert (await c.get("/collections/team-a-missing", headers=TEAM_A_KEY)).status == 404
        assert (await c.post("/collections/team-a-docs/snapshots", headers=TEAM_A_KEY)).status == 201
        assert (await c.delete("/collections/team-a-docs", headers=TEAM_A_KEY)).status == 200


async def test_a_scoped_key_restores_only_under_its_names_and_never_reads_metrics(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(SCOPED_SETTING) as gw:
        octets = {**TEAM_A_KEY, "Content-Type": "application/octet-stream"}
        resp = await gw.client.post("/collections/restore?name=team-b-x", data=b"not a snapshot", headers=octets)
        assert resp.status == 403 and "'team-b-x'" in (await resp.json())["error"]["message"]
        resp = await gw.client.post("/collections/restore?name=team-a-x", data=b"not a snapshot", headers=octets)
        assert resp.status == 400  # its own name: on to the snapshot's own checks

        resp = await gw.client.get("/metrics", headers=TEAM_A_KEY)
        assert resp.status == 403
        assert "every collection" in (await resp.json())["error"]["message"]
        assert (await gw.client.get("/metrics", headers=bearer("reader"))).status == 200
        # Not bound to a collection: a scoped key embeds (here: no worker, so 503, not a refusal).
        resp = await gw.client.post("/embed", json={"texts": ["hi"]}, headers=TEAM_A_KEY)
        assert resp.status == 503
        assert (await gw.client.get("/models", headers=TEAM_A_KEY)).status == 200


async def test_audit_lines_carry_the_collection(start_gateway: GatewayFactory) -> None:
    async with start_gateway(SCOPED_SETTING) as gw:
        with structlog.testing.capture_logs() as logs:
            await gw.client.post("/collections", json={"name": "team-b-1", "dimension": 3}, headers=TEAM_A_KEY)
            await gw.client.get("/collections/team-b-1", headers=TEAM_A_KEY)
            await gw.client.post("/collections", json={"name": "team-a-1", "dimension": 3}, headers=TEAM_A_KEY)
            await gw.client.delete("/collections/team-a-1", headers=TEAM_A_KEY)
    audit = [
        (e["event"], e["key"], e["collection"], e["outcome"])
        for e in logs
        if e["event"] in ("auth_refused", "admin_action")
    ]
    assert audit == [
        ("auth_refused", "team-a", "team-b-1", 403),
        ("admin_action", "team-a", "team-b-1", 403),
        ("auth_refused", "team-a", "team-b-1", 403),
        ("admin_action", "team-a", "team-a-1", 201),
        ("admin_action", "team-a", "team-a-1", 200),
    ]
