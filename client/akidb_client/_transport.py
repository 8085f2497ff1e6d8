"""Settings both clients share, and the retry loop around one send (written once for sync and async)."""

from __future__ import annotations

import os
import time
from typing import Any, TypeVar

import httpx

from akidb_client._api import Call
from akidb_client._retry import RetryPolicy
from akidb_client.errors import ConnectionFailed, error_for

T = TypeVar("T")
DEFAULT_URL = "http://localhost:8080"
DEFAULT_TIMEOUT_S = 60.0
# Errors raised before a byte of the request left: safe to resend for any call.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def settings(url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and headers: explicit arguments first, then AKIDB_URL / AKIDB_API_KEY."""
    base = (url or os.environ.get("AKIDB_URL") or DEFAULT_URL).rstrip("/")
    key = api_key if api_key is not None else os.environ.get("AKIDB_API_KEY")
    headers = {"User-Agent": "akidb-client/0.1", "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return base, headers


def request_args(call: Call[Any]) -> dict[str, Any]:
    """httpx.request keyword arguments for a call."""
    return {"method": call.method, "url": call.path, "json": call.json, "params": call.params}


def parse(call: Call[T], response: httpx.Response) -> T:
    """The call's result from a response, or its typed error."""
    if response.status_code < 400:
        return call.parse(response.json())
    try:
        body = response.json()
    except ValueError:
        body = response.text
    raise error_for(response.status_code, body)


class Retrier:
    """The retry state of one call: says how long to wait before the next send, or raises the final error."""

    def __init__(self, policy: RetryPolicy, call: Call[Any]) -> None:
        self.policy = policy
        self.call = call
        self.started = time.monotonic()
        self.attempt = 0

    def after_response(self, response: httpx.Response) -> float:
        """Seconds to wait after an error response; raises its typed error when retrying is over."""
        delay = self.policy.delay(
            attempt=self.attempt,
            elapsed_s=time.monotonic() - self.started,
            idempotent=self.call.idempotent,
            status=response.status_code,
            retry_after=response.headers.get("Retry-After"),
        )
        if delay is None:
            parse(self.call, response)  # raises
        self.attempt += 1
        return float(delay or 0.0)

    def after_exception(self, exc: httpx.TransportError) -> float:
        """Seconds to wait after a transport error; raises ConnectionFailed when retrying is over."""
        delay = self.policy.delay(
            attempt=self.attempt,
            elapsed_s=time.monotonic() - self.started,
            idempotent=self.call.idempotent,
            connect_failed=isinstance(exc, _NOT_SENT),
        )
        if delay is None:
            what = f"{self.call.method} {self.call.path}: {type(exc).__name__}: {exc}"
            raise ConnectionFailed(what, code="connection_failed") from exc
        self.attempt += 1
        return delay
