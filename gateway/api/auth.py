"""API keys: the key table, the one table of the scope each route needs, and the aiohttp middleware.

A client sends `Authorization: Bearer <key>` (gRPC: the `authorization` metadata). The gateway keeps only
each key's SHA-256 and compares digests in constant time. No key and no header value is ever logged or
echoed: logs name the key's `name`. With no keys configured, auth is off.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.api.middleware import Handler
from gateway.errors import Forbidden, Unauthorized, as_api_error
from shared.config import ApiKeyEntry, AuthConfig, Config

log = structlog.get_logger("gateway.api.auth")

READ, WRITE, ADMIN = "read", "write", "admin"
# Answered without a key: liveness, readiness, and the API's own description.
# The console's own files are open too: the page asks for a key, and every call it makes carries one.
OPEN_ROUTES = frozenset(
    {"/health", "/ready", "/docs", "/docs/{file}", "/openapi.json", "/ui", "/ui/", "/ui/static/{file}"}
)
METRICS_ROUTE = "/metrics"  # open unless auth.protect_metrics
GRPC = "GRPC"  # the method column of gRPC rows: their routes are `/package.Service/Method`
# gRPC services answered without a key, as /health and /ready are (health checks, reflection).
OPEN_GRPC_SERVICES = frozenset(
    {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}
)
# Any known key, no scope: a path no route serves (its 404/405 is not told to strangers).
ANY_KEY = ""

# The one table: (method, route pattern as aiohttp names it) → the scope it needs. A route that is in
# neither this table nor OPEN_ROUTES needs `admin`: a new route stays closed until someone places it here.
ROUTE_SCOPES: dict[tuple[str, str], str] = {
    ("POST", "/embed"): READ,
    ("POST", "/v1/embeddings"): READ,
    ("GET", "/v1/models"): READ,
    ("GET", "/v1/models/{model}"): READ,
    ("GET", "/models"): READ,
    ("GET", "/workers"): READ,
    ("GET", METRICS_ROUTE): READ,
    ("GET", "/collections"): READ,
    ("GET", "/collections/{collection}"): READ,
    ("POST", "/collections/{collection}/search"): READ,
    ("GET", "/collections/{collection}/documents"): READ,
    ("GET", "/collections/{collection}/documents/{doc_id}"): READ,
    ("POST", "/collections/{collection}/documents"): WRITE,
    ("DELETE", "/collections/{collection}/documents/{doc_id}"): WRITE,
    ("POST", "/collections"): ADMIN,
    ("DELETE", "/collections/{collection}"): ADMIN,
    ("POST", "/collections/{collection}/reembed"): ADMIN,
    ("GET", "/collections/{collection}/jobs/{job_id}"): ADMIN,
    ("DELETE", "/collections/{collection}/jobs/{job_id}"): ADMIN,
    ("POST", "/collections/{collection}/snapshots"): ADMIN,
    ("GET", "/collections/{collection}/snapshots"): ADMIN,
    ("GET", "/collections/{collection}/snapshots/{name}"): ADMIN,
    ("DELETE", "/collections/{collection}/snapshots/{name}"): ADMIN,
    ("POST", "/collections/restore"): ADMIN,
    (GRPC, "/akidb.embedding.EmbeddingService/Embed"): READ,
    (GRPC, "/akidb.embedding.EmbeddingService/GetModelInfo"): READ,
}


def key_digest_bytes(key: str) -> bytes:
    """The raw SHA-256 of a presented key (what the table compares)."""
    return hashlib.sha256(key.encode()).digest()


class KeyTable:
    """The configured keys by digest. `lookup` does the same work for every key, found or not."""

    def __init__(self, entries: Iterable[ApiKeyEntry]) -> None:
        self._entries = [(bytes.fromhex(e.sha256), e) for e in entries]

    @property
    def enabled(self) -> bool:
        """Whether auth is on: at least one key is configured."""
        return bool(self._entries)

    def lookup(self, key: str) -> ApiKeyEntry | None:
        """The entry whose digest matches, compared in constant time against every entry."""
        digest = key_digest_bytes(key)
        found = None
        for stored, entry in self._entries:
            # No early exit: the time taken does not say which entry (or whether one) matched.
            if hmac.compare_digest(digest, stored) and found is None:
                found = entry
        return found


@dataclass(frozen=True)
class Rules:
    """The keys plus the route table, as one policy: `check` says who is calling, or raises."""

    table: KeyTable
    protect_metrics: bool = False

    @classmethod
    def from_config(cls, auth: AuthConfig) -> Rules:
        """The policy the `auth:` section describes."""
        return cls(KeyTable(auth.keys), auth.protect_metrics)

    def scope_for(self, method: str, route: str | None) -> str | None:
        """The scope `method route` needs; None: open; ANY_KEY: any known key (no route matched)."""
        if route is None:
            return ANY_KEY
        if route in OPEN_ROUTES or (route == METRICS_ROUTE and not self.protect_metrics):
            return None
        if method == GRPC and route.strip("/").partition("/")[0] in OPEN_GRPC_SERVICES:
            return None
        return ROUTE_SCOPES.get(("GET" if method == "HEAD" else method, route), ADMIN)

    def needs_key(self, scope: str | None) -> bool:
        """Whether a call needing `scope` must carry a key (auth is on and the route is not open)."""
        return scope is not None and self.table.enabled

    def identify(self, authorization: str | None) -> ApiKeyEntry:
        """The caller's key entry, from the Authorization value; Unauthorized if missing or unknown."""
        key = bearer(authorization)
        if key is None:
            raise Unauthorized("an API key is required: send the header `Authorization: Bearer <key>`")
        entry = self.table.lookup(key)
        if entry is None:
            raise Unauthorized("the API key is not valid", invalid_key=True)
        return entry


def authorize(entry: ApiKeyEntry, scope: str | None, route: str) -> None:
    """Forbidden, naming the scope, unless the key holds what `route` needs."""
    if scope and scope not in entry.scopes:
        raise Forbidden(f"the API key {entry.name!r} lacks the {scope!r} scope, which {route} needs")


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None for a missing or other scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def route_of(request: web.Request) -> str | None:
    """The matched route's pattern (`/collections/{collection}`), or None when no route matched."""
    match = request.match_info
    if match.http_exception is not None:
        return None
    resource = match.route.resource
    return None if resource is None else resource.canonical


def refused(key: ApiKeyEntry | None, route: str, remote: str | None, outcome: int | str, scope: str | None) -> None:
    """The audit line of a refused call: who (or `anonymous`), what, from where, and the answer."""
    log.warning(
        "auth_refused",
        key=key.name if key else "anonymous",
        route=route,
        remote=remote,
        outcome=outcome,
        scope=scope or None,
    )


def middlewares(auth: AuthConfig) -> list[Middleware]:
    """What create_app adds after the error middleware (which renders refusals): none while auth is off."""
    rules = Rules.from_config(auth)
    return [middleware(rules)] if rules.table.enabled else []


def middleware(rules: Rules) -> Middleware:
    """The aiohttp middleware enforcing `rules`."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_of(request)
        scope = rules.scope_for(request.method, route)
        if not rules.needs_key(scope):
            return await handler(request)
        shown = f"{request.method} {route or request.path}"
        entry = None
        try:
            entry = rules.identify(request.headers.get("Authorization"))
            authorize(entry, scope, shown)
        except (Unauthorized, Forbidden) as exc:
            refused(entry, shown, request.remote, exc.http_status, scope)
            raise
        structlog.contextvars.bind_contextvars(key=entry.name)
        if scope != ADMIN:
            return await handler(request)
        return await _audited(request, handler, entry, shown)

    return authenticate


async def _audited(request: web.Request, handler: Handler, entry: ApiKeyEntry, route: str) -> web.StreamResponse:
    """Run an admin call and log one `admin_action` line with its outcome, whatever happens."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception as exc:
        error = as_api_error(exc)
        status = error.http_status if error else 500
        raise
    finally:
        log.info("admin_action", key=entry.name, route=route, path=request.path, remote=request.remote, outcome=status)


def warn_if_open(cfg: Config) -> None:
    """Log whether auth is on; a warning when it is off and the gateway listens beyond loopback."""
    if cfg.auth.keys:
        log.info("auth_enabled", keys=len(cfg.auth.keys), protect_metrics=cfg.auth.protect_metrics)
    elif not is_loopback(cfg.server.host):
        log.warning(
            "auth_disabled",
            host=cfg.server.host,
            hint="anyone who reaches this address can read and change every collection; "
            "add keys under auth: (`akidb-keys api --name app --scopes read,write`)",
        )


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
