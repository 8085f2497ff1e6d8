"""Settings both clients share, and the retry loop around one send (written once for sync and async)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import httpx

from akidb_client._api import Call
from akidb_client._gateways import Gateways, gateway_urls
from akidb_client._retry import RetryPolicy
from akidb_client.errors import ConnectionFailed, error_for

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 60.0
# Answers that say "this gateway cannot serve now": the next call, and a retry of this one, go elsewhere.
FAIL_OVER = frozenset({503})
# Errors raised before a byte of the request left: safe to resend for any call.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def settings(url: str | Sequence[str] | None, api_key: str | None) -> tuple[Gateways, dict[str, str]]:
    """The gateways and headers: explicit arguments first, then AKIDB_URL (one URL or several, comma-separated)
    and AKIDB_API_KEY."""
    key = api_key if api_key is not None else os.environ.get("AKIDB_API_KEY")
    headers = {"User-Agent": "akidb-client/0.1", "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return Gateways(gateway_urls(url)), headers


def request_args(call: Call[Any], gateways: Gateways, base: str) -> dict[str, Any]:
    """httpx.request keyword arguments for a call sent to the gateway at `base`."""
    return {"method": call.method, "url": gateways.url(call.path, base), "json": call.json, "params": call.params}


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

    def __init__(self, policy: RetryPolicy, call: Call[Any], gateways: Gateways) -> None:
        self.policy = policy
        self.call = call
        self.gateways = gateways
        self.started = time.monotonic()
        self.attempt = 0
        self.base = gateways.current
        self._tried = {self.base}

    def next_base(self) -> str:
        """The gateway the next send goes to (the one in use now)."""
        self.base = self.gateways.current
        self._tried.add(self.base)
        return self.base

    def _fail_over(self) -> bool:
        """This gateway failed: move on; True if the next send goes to a gateway this call has not tried."""
        self.gateways.failed(self.base)
        return self.gateways.current not in self._tried

    def after_response(self, response: httpx.Response) -> float:
        """Seconds to wait after an error response; raises its typed error when retrying is over."""
        delay = self.policy.delay(
            attempt=self.attempt,
            elapsed_s=time.monotonic() - self.started,
            idempotent=self.call.idempotent,
            status=response.status_code,
            retry_after=response.headers.get("Retry-After"),
            elsewhere=response.status_code in FAIL_OVER and self._fail_over(),
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
            elsewhere=self._fail_over(),  # the next call goes elsewhere too, whether or not this one is resent
        )
        if delay is None:
            what = f"{self.call.method} {self.base}{self.call.path}: {type(exc).__name__}: {exc}"
            raise ConnectionFailed(what, code="connection_failed") from exc
        self.attempt += 1
        return delay
