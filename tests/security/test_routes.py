"""The attacker's suite: every route the app serves (REST from its router, gRPC from the service descriptors)
tried with no key, an unknown key, a key without the route's scope, and a key scoped to another team's
collections; each answer's exact status and error code is asserted.

A new route is attacked without anyone listing it here. What the suite checks it against is the declared policy
(OPEN_ROUTES, ROUTE_SCOPES, COLLECTION_ELSEWHERE); the answers a refusal must not change are compared with those
the all-powerful `ops` key gets for the same request.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from google.protobuf.descriptor import MethodDescriptor

from gateway.api.auth import (
    ADMIN,
    COLLECTION_ELSEWHERE,
    COLLECTION_PARAM,
    GRPC,
    METRICS_ROUTE,
    OPEN_GRPC_SERVICES,
    OPEN_ROUTES,
    ROUTE_SCOPES,
    UNSCOPED_ROUTES,
)
from gateway.app import create_app
from tests.security.attack import (
    LACKING,
    OPS,
    OTHER,
    PATTERN,
    TEAM_A,
    UNKNOWN,
    Answer,
    RpcAnswer,
    call_rpc,
    grpc_methods,
    raw_request,
    rest_routes,
)
from tests.security.conftest import Target
from tests.support.gateway import make_config

# The async tests share the module's gateway, so they run on the module's event loop.
ON_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

# A value for every path parameter any route has; a route with a new parameter fails here until it gets one.
PARAMS = {
    COLLECTION_PARAM: OTHER,
    "doc_id": "d1",
    "job_id": "job_0123456789abcdef",
    "name": "snap",
    "model": "all-MiniLM-L6-v2",
    "file": "app.js",
}
# What a collection-scoped key's request carries on routes that name the collection outside the path.
ELSEWHERE_REQUESTS: dict[tuple[str, str], tuple[str, bytes | None, str]] = {  # (path suffix, body, content type)
    ("POST", "/collections"): ("", b'{"name": "team-b-new", "dimension": 3}', "application/json"),
    ("POST", "/collections/restore"): ("?name=team-b-new", b"a snapshot", "application/octet-stream"),
    ("GET", "/collections"): ("", None, "application/json"),
}


def _served() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as data:
        return rest_routes(create_app(make_config("tcp://127.0.0.1:1", data)))


ROUTES = _served()
RPCS = grpc_methods()


def fill(route: str, collection: str = OTHER) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        assert name in PARAMS, f"{route}: give the new path parameter {{{name}}} a value in PARAMS"
        return collection if name == COLLECTION_PARAM else PARAMS[name]

    return re.sub(r"\{(\w+)\}", value, route)


def needed_scope(method: str, route: str) -> str | None:
    """The declared policy: None for an open route (with auth.open_metrics off, as here)."""
    if route in OPEN_ROUTES:
        return None
    return ROUTE_SCOPES.get(("GET" if method == "HEAD" else method, route), ADMIN)


async def send(target: Target, method: str, path: str, headers: dict[str, str]) -> Answer:
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    return await raw_request(target.port, method, path, headers, body)


def refused(answer: Answer, method: str, status: int, code: str) -> None:
    assert answer.status == status, answer
    if method != "HEAD":  # a HEAD answer has no body to carry the code
        assert answer.code == code, answer


def test_the_inventory_is_the_whole_app() -> None:
    # The suite's size, and a guard that it attacks what the app serves (not an empty list).
    methods = {m for m, _ in ROUTES}
    assert {"GET", "HEAD", "POST", "DELETE"} <= methods
    assert {(m, r) for m, r in ROUTE_SCOPES if m != GRPC} <= set(ROUTES)
    assert {r for m, r in ROUTE_SCOPES if m == GRPC} <= {path for path, _ in RPCS}


@ON_MODULE_LOOP
@pytest.mark.parametrize(("method", "route"), ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
async def test_rest_route_under_attack(target: Target, method: str, route: str) -> None:
    path = fill(route)
    scope = needed_scope(method, route)
    if scope is None:
        control = await send(target, method, path, OPS.header())
        for headers in ({}, UNKNOWN, LACKING["read"].header(), TEAM_A.header()):
            answer = await send(target, method, path, headers)
            assert answer.status == control.status and answer.status not in (401, 403), (headers, answer)
        return

    # No key; a key the gateway does not know: 401, whatever the route.
    refused(await send(target, method, path, {}), method, 401, "unauthorized")
    refused(await send(target, method, path, UNKNOWN), method, 401, "unauthorized")

    # A known key holding every scope but the one the route needs: 403, naming the scope.
    answer = await send(target, method, path, LACKING[scope].header())
    refused(answer, method, 403, "forbidden")
    if method != "HEAD":
        assert f"'{scope}'" in answer.message and "no-" + scope in answer.message

    # A key with every scope, limited to another team's collections.
    await scoped_key_on(target, method, route, path)


async def scoped_key_on(target: Target, method: str, route: str, path: str) -> None:
    """The control (the unscoped key's answer) is asked for only where nothing is refused: on a collection
    route it would act (a DELETE would delete the other team's collection the next routes are tried on)."""
    base = "GET" if method == "HEAD" else method
    if f"{{{COLLECTION_PARAM}}}" in route:
        for ref in (OTHER, target.other_id):  # by name and by id
            answer = await send(target, method, fill(route, ref), TEAM_A.header())
            refused(answer, method, 403, "forbidden")
            if method != "HEAD":
                assert f"'{TEAM_A.name}'" in answer.message and f"'{PATTERN}'" in answer.message
                assert f"'{OTHER}'" in answer.message  # the name, even when the path gave the id
    elif (base, route) in COLLECTION_ELSEWHERE:
        suffix, body, content_type = ELSEWHERE_REQUESTS[(base, route)]
        answer = await raw_request(target.port, method, path + suffix, TEAM_A.header(), body, content_type)
        if route == "/collections" and base == "GET":
            assert answer.status == 200
            if method == "GET":
                names = [c["name"] for c in answer.body["collections"]]
                assert names and all(n.startswith("team-a-") for n in names), names
        else:
            refused(answer, method, 403, "forbidden")
            assert "'team-b-new'" in answer.message
    elif route in UNSCOPED_ROUTES:
        refused(await send(target, method, path, TEAM_A.header()), method, 403, "forbidden")
    else:  # not bound to a collection: the scoped key is answered as the unscoped one is
        control = await send(target, method, path, OPS.header())
        answer = await send(target, method, path, TEAM_A.header())
        assert answer.status == control.status and answer.status not in (401, 403), (answer, control)


def test_metrics_is_attacked_as_a_closed_route() -> None:
    assert ("GET", METRICS_ROUTE) in ROUTES and needed_scope("GET", METRICS_ROUTE) is not None


# ---- gRPC ------------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def channel(target: Target) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{target.grpc_port}") as ch:
        yield ch


@ON_MODULE_LOOP
@pytest.mark.parametrize(("path", "method"), RPCS, ids=[p for p, _ in RPCS])
async def test_grpc_method_under_attack(channel: grpc.aio.Channel, path: str, method: MethodDescriptor) -> None:
    control = await call_rpc(channel, path, method, f"Bearer {OPS.secret}")
    keys = {
        "none": None,
        "unknown": UNKNOWN["Authorization"],
        "team-a": f"Bearer {TEAM_A.secret}",
    }
    if path.strip("/").partition("/")[0] in OPEN_GRPC_SERVICES:
        for key in [*keys.values(), f"Bearer {LACKING['read'].secret}"]:
            answer = await call_rpc(channel, path, method, key)
            assert answer.code == control.code, (key, answer)
            assert answer.code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
        return
    scope = ROUTE_SCOPES.get((GRPC, path), ADMIN)
    assert await call_rpc(channel, path, method, None) == RpcAnswer(grpc.StatusCode.UNAUTHENTICATED, "unauthorized")
    assert await call_rpc(channel, path, method, keys["unknown"]) == RpcAnswer(
        grpc.StatusCode.UNAUTHENTICATED, "unauthorized"
    )
    wrong = await call_rpc(channel, path, method, f"Bearer {LACKING[scope].secret}")
    assert wrong == RpcAnswer(grpc.StatusCode.PERMISSION_DENIED, "forbidden")
    # No gRPC method is bound to a collection: a scoped key is answered as the unscoped one is.
    scoped = await call_rpc(channel, path, method, keys["team-a"])
    assert scoped == control and control.code not in (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    )
