"""API keys on gRPC: a server interceptor applying gateway/api/auth.py's rules to the `authorization` metadata."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from gateway.api.auth import GRPC, Rules, authorize, refused
from gateway.api.rpc.service import REQUEST_ID_KEY, error_metadata
from gateway.errors import ApiError, Forbidden, Unauthorized
from shared.config import ApiKeyEntry

AUTHORIZATION_KEY = "authorization"

# One constructor per call shape, so a refusal answers with the same shape as the method it stands for.
_HANDLERS: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks every call's key before its handler runs; open services (health, reflection) pass untouched."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """The method's own handler, or one that refuses with UNAUTHENTICATED / PERMISSION_DENIED."""
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        scope = self.rules.scope_for(GRPC, method)
        if handler is None or not self.rules.needs_key(scope):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        entry = None
        try:
            entry = self.rules.identify(metadata.get(AUTHORIZATION_KEY))
            authorize(entry, scope, f"{GRPC} {method}")
        except (Unauthorized, Forbidden) as exc:
            request_id = metadata.get(REQUEST_ID_KEY) or uuid.uuid4().hex
            return _refusal(handler, exc, entry, method, scope, request_id)
        return handler


def _refusal(
    handler: grpc.RpcMethodHandler,
    error: ApiError,
    entry: ApiKeyEntry | None,
    method: str,
    scope: str | None,
    request_id: str,
) -> grpc.RpcMethodHandler:
    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        refused(entry, f"{GRPC} {method}", context.peer(), error.grpc_status.name, scope)
        await context.abort(error.grpc_status, error.message, trailing_metadata=error_metadata(error, request_id))

    make = _HANDLERS[(handler.request_streaming, handler.response_streaming)]
    return make(
        refuse, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


def interceptors(rules: Rules) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors the gRPC server runs: none while auth is off."""
    return [AuthInterceptor(rules)] if rules.required else []
