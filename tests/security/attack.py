"""What the attacker suite needs: the route inventory (from the app's router and the gRPC descriptors), the keys
it attacks with, and a raw HTTP client that sends a path exactly as written (no client-side normalising).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from gateway.api.auth import ADMIN, READ, WRITE
from shared.config import key_digest
from shared.proto import embedding_pb2

SCOPES = (READ, WRITE, ADMIN)
OTHER = "team-b-docs"  # another team's collection: exists, holds a document
OWN = "team-a-docs"  # the scoped key's own collection
PATTERN = "team-a-*"


@dataclass(frozen=True)
class Key:
    name: str
    scopes: tuple[str, ...]
    collections: tuple[str, ...] | None = None

    @property
    def secret(self) -> str:
        return f"{self.name}-secret-key"

    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"name": self.name, "sha256": key_digest(self.secret), "scopes": list(self.scopes)}
        if self.collections is not None:
            record["collections"] = list(self.collections)
        return record

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


OPS = Key("ops", SCOPES)  # every scope, every collection: the control
TEAM_A = Key("team-a", SCOPES, (PATTERN,))  # every scope, its own collections only
# For each scope, a key with every other scope: the "wrong scope" case of a route needing that scope.
LACKING = {scope: Key(f"no-{scope}", tuple(s for s in SCOPES if s != scope)) for scope in SCOPES}
KEYS = (OPS, TEAM_A, *LACKING.values())
UNKNOWN = {"Authorization": "Bearer akidb_not-a-key-the-gateway-knows"}


def rest_routes(app: web.Application) -> list[tuple[str, str]]:
    """Every (method, route pattern) the app serves, HEAD included: what a new route adds lands here by itself."""
    return sorted({(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None})


def grpc_methods() -> list[tuple[str, MethodDescriptor]]:
    """Every method of every service the gRPC server registers, as `/package.Service/Method`."""
    files = (embedding_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR)
    return sorted(
        (f"/{service.full_name}/{method.name}", method)
        for file in files
        for service in file.services_by_name.values()
        for method in service.methods
    )


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or the raw bytes when the body is not JSON

    @property
    def code(self) -> str | None:
        """Our error code (or OpenAI's error type on /v1/), if the body is an error."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            error = self.body["error"]
            return str(error.get("code") or error.get("type"))
        return None

    @property
    def message(self) -> str:
        return str(self.body["error"]["message"]) if self.code else ""


async def raw_request(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> Answer:
    """One HTTP/1.1 request with `target` sent byte for byte, on its own connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + (body or b""))
    try:
        async with asyncio.timeout(30):  # a guard against a hung test, not a speed check
            data = await reader.read()
    finally:
        writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        parsed: Any = json.loads(payload) if payload else b""
    except ValueError:
        parsed = payload
    return Answer(status, parsed)


@dataclass(frozen=True)
class RpcAnswer:
    code: grpc.StatusCode
    error_code: str | None  # the akidb-error-code trailer


async def call_rpc(channel: grpc.aio.Channel, path: str, method: MethodDescriptor, key: str | None) -> RpcAnswer:
    """Call `path` with an empty request of its input type and read its first answer (or its error)."""
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    metadata = (("authorization", key),) if key else ()
    kinds = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }
    make = kinds[(method.client_streaming, method.server_streaming)]
    stub = make(path, request_serializer=request_cls.SerializeToString, response_deserializer=response_cls.FromString)
    request = request_cls()

    async def one() -> AsyncIterator[Any]:
        yield request

    call = stub(one() if method.client_streaming else request, metadata=metadata, timeout=30)
    try:
        if method.server_streaming:
            async for _ in call:
                break
            call.cancel()
        else:
            await call
    except grpc.aio.AioRpcError as exc:
        trailers = dict(exc.trailing_metadata() or ())
        code = trailers.get("akidb-error-code")
        return RpcAnswer(exc.code(), str(code) if code is not None else None)
    return RpcAnswer(grpc.StatusCode.OK, None)
