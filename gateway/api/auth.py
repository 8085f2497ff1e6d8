"""API keys: the key table, the one table of the scope each route needs, and the aiohttp middleware.

A client sends `Authorization: Bearer <key>` (gRPC: the `authorization` metadata). The gateway keeps only
each key's SHA-256, finds a presented key by its digest and compares the digests in constant time. No key
and no header value is ever logged or echoed: logs name the key's `name`. With no keys configured (neither
`auth.keys` nor `auth.keys_file`), auth is off. A key may be limited to collections whose names match its
glob patterns (`collections`); such a key gets 403 on any other collection, on every route.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable
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
METRICS_ROUTE = "/metrics"  # needs `read` unless auth.open_metrics
# Routes whose answer spans every collection (the metrics' labels name each with its document count): a key
# limited to some collections is refused there, whatever its scopes.
UNSCOPED_ROUTES = frozenset({METRICS_ROUTE})
# The path parameter naming a collection, on every route bound to one.
COLLECTION_PARAM = "collection"
# Routes that name their collection elsewhere than the path, and what their handler checks against a key's
# patterns (`check_collection`, `may_see`). docs/security.md's table and tests/security read this.
COLLECTION_ELSEWHERE: dict[tuple[str, str], str] = {
    ("POST", "/collections"): "the body's `name`",
    ("POST", "/collections/restore"): "the query's `name`",
    ("GET", "/collections"): "lists only the collections the key may use",
}
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
    ("POST", "/rerank"): READ,
    ("POST", "/v1/rerank"): READ,
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
    (GRPC, "/akidb.embedding.RerankService/Rerank"): READ,
}


def key_digest_bytes(key: str) -> bytes:
    """The raw SHA-256 of a presented key (what the table compares)."""
    return hashlib.sha256(key.encode()).digest()


class KeyTable:
    """The configured keys by digest, each scoped key's patterns compiled once into one regular expression."""

    def __init__(self, entries: Iterable[ApiKeyEntry]) -> None:
        self.entries = tuple(entries)
        self._by_digest: dict[bytes, ApiKeyEntry] = {}
        for e in self.entries:
            self._by_digest.setdefault(bytes.fromhex(e.sha256), e)  # the first of two records with one key wins
        self._patterns = {e.name: _compile(e.collections) for e in self.entries if e.collections is not None}

    @property
    def enabled(self) -> bool:
        """Whether any key is configured."""
        return bool(self.entries)

    def lookup(self, key: str) -> ApiKeyEntry | None:
        """The entry whose digest matches the presented key's SHA-256, or None."""
        digest = key_digest_bytes(key)
        entry = self._by_digest.get(digest)
        # The dict finds a candidate by the digest's hash, which says nothing useful about the key (finding a key
        # that lands in a given bucket means inverting SHA-256); the one byte-wise comparison is constant-time.
        # One hash lookup instead of a comparison per key keeps a table of thousands of keys off the hot path.
        stored = bytes.fromhex(entry.sha256) if entry is not None else _NO_DIGEST
        return entry if hmac.compare_digest(digest, stored) else None

    def allows(self, entry: ApiKeyEntry, collection: str) -> bool:
        """Whether `entry` may touch the collection named `collection` (always, for an unscoped key)."""
        pattern = self._patterns.get(entry.name)
        return pattern is None or pattern.fullmatch(collection) is not None


_NO_DIGEST = bytes(32)


def _compile(patterns: tuple[str, ...]) -> re.Pattern[str]:
    # fnmatch's case-sensitive rules (`*`, `?`, `[seq]`), all patterns in one expression: one match per request.
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class Rules:
    """The keys plus the route table, as one policy: `identify` says who is calling, `scope_for` what a route
    needs. `table` is replaced whole when auth.keys_file changes (gateway/api/key_rotation.py); REST and gRPC
    share one Rules, so both see the new keys from their next call on."""

    def __init__(self, table: KeyTable, *, open_metrics: bool = False, required: bool | None = None) -> None:
        self.table = table
        self.open_metrics = open_metrics
        # On when keys are configured, or a keys file is (it may be empty now and filled later: an emptied
        # file must refuse every call, not open the gateway).
        self.required = table.enabled if required is None else required

    @classmethod
    def from_config(cls, auth: AuthConfig) -> Rules:
        """The policy the `auth:` section describes."""
        required = bool(auth.keys) or auth.keys_file is not None
        return cls(KeyTable(auth.keys), open_metrics=auth.open_metrics, required=required)

    def scope_for(self, method: str, route: str | None) -> str | None:
        """The scope `method route` needs; None: open; ANY_KEY: any known key (no route matched)."""
        if route is None:
            return ANY_KEY
        if route in OPEN_ROUTES or (route == METRICS_ROUTE and self.open_metrics):
            return None
        if method == GRPC and route.strip("/").partition("/")[0] in OPEN_GRPC_SERVICES:
            return None
        return ROUTE_SCOPES.get(("GET" if method == "HEAD" else method, route), ADMIN)

    def needs_key(self, scope: str | None) -> bool:
        """Whether a call needing `scope` must carry a key (auth is on and the route is not open)."""
        return scope is not None and self.required

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


def authorize_unscoped(entry: ApiKeyEntry, route: str) -> None:
    """Forbidden unless the key may see every collection (what UNSCOPED_ROUTES answer about)."""
    if entry.collections is not None:
        raise Forbidden(
            f"the API key {entry.name!r} is limited to collections matching {_shown(entry.collections)}; "
            f"{route} reports on every collection and needs a key without `collections`"
        )


def authorize_collection(table: KeyTable, entry: ApiKeyEntry, collection: str) -> None:
    """Forbidden, naming the key and its patterns, unless the key may touch `collection`."""
    if not table.allows(entry, collection):
        patterns = entry.collections or ()
        raise Forbidden(
            f"the API key {entry.name!r} may use only collections matching {_shown(patterns)}, "
            f"and {collection!r} does not match"
        )


def _shown(patterns: tuple[str, ...]) -> str:
    return ", ".join(repr(p) for p in patterns)


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


def refused(
    key: ApiKeyEntry | None,
    route: str,
    remote: str | None,
    outcome: int | str,
    scope: str | None,
    collection: str | None = None,
) -> None:
    """The audit line of a refused call: who (or `anonymous`), what, which collection, from where, the answer."""
    log.warning(
        "auth_refused",
        key=key.name if key else "anonymous",
        route=route,
        collection=collection,
        remote=remote,
        outcome=outcome,
        scope=scope or None,
    )


@dataclass(frozen=True)
class Caller:
    """The key a request came with, and the table it was found in (a reload mid-request changes neither)."""

    entry: ApiKeyEntry
    table: KeyTable
    route: str
    scope: str | None

    def allows(self, collection: str) -> bool:
        """Whether this key may touch (and see) the collection named `collection`."""
        return self.table.allows(self.entry, collection)


CALLER = web.RequestKey("caller", Caller)
# The collection an admin action concerns, for its audit line: from the path, or set by the handler (create,
# restore) once it has read the name from the body or the query.
AUDIT_COLLECTION = web.RequestKey("audit_collection", str)


def check_collection(request: web.Request, collection: str) -> None:
    """For routes that name a collection outside the path (create, restore): Forbidden unless the caller's key
    may touch it. A no-op while auth is off."""
    request[AUDIT_COLLECTION] = collection
    caller = request.get(CALLER)
    if caller is None:
        return
    try:
        authorize_collection(caller.table, caller.entry, collection)
    except Forbidden as exc:
        refused(caller.entry, caller.route, request.remote, exc.http_status, caller.scope, collection)
        raise


def may_see(request: web.Request, collection: str) -> bool:
    """Whether the caller may see `collection` in a listing (everyone may, while auth is off)."""
    caller = request.get(CALLER)
    return caller is None or caller.allows(collection)


Resolver = Callable[[str], str]  # a collection reference from a path (id or name) → the collection's name


def middlewares(rules: Rules, resolve: Resolver) -> list[Middleware]:
    """What create_app adds after the error middleware (which renders refusals): none while auth is off."""
    return [middleware(rules, resolve)] if rules.required else []


def middleware(rules: Rules, resolve: Resolver) -> Middleware:
    """The aiohttp middleware enforcing `rules`; `resolve` names the collection a path refers to."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_of(request)
        scope = rules.scope_for(request.method, route)
        if not rules.needs_key(scope):
            return await handler(request)
        shown = f"{request.method} {route or request.path}"
        ref = request.match_info.get(COLLECTION_PARAM) if route is not None else None
        collection = resolve(ref) if ref is not None else None
        entry = None
        table = rules.table  # one table for the whole check, and for the handler's own checks
        try:
            entry = rules.identify(request.headers.get("Authorization"))
            authorize(entry, scope, shown)
            if route in UNSCOPED_ROUTES:
                authorize_unscoped(entry, shown)
            if collection is not None:
                authorize_collection(table, entry, collection)
        except (Unauthorized, Forbidden) as exc:
            refused(entry, shown, request.remote, exc.http_status, scope, collection)
            raise
        request[CALLER] = Caller(entry, table, shown, scope)
        if collection is not None:
            request[AUDIT_COLLECTION] = collection
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
        log.info(
            "admin_action",
            key=entry.name,
            route=route,
            collection=request.get(AUDIT_COLLECTION),
            path=request.path,
            remote=request.remote,
            outcome=status,
        )


def warn_if_open(cfg: Config) -> None:
    """Log whether auth is on; a warning when it is off and the gateway listens beyond loopback."""
    if cfg.auth.keys or cfg.auth.keys_file is not None:
        scoped = sum(k.collections is not None for k in cfg.auth.keys)
        log.info("auth_enabled", keys=len(cfg.auth.keys), scoped=scoped, open_metrics=cfg.auth.open_metrics)
        if not cfg.auth.keys:
            log.warning(
                "auth_no_keys",
                keys_file=cfg.auth.keys_file,
                hint="every call but the open routes is "
                "refused until auth.keys_file holds a key (it is re-read when it changes)",
            )
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
