"""Typed exceptions carrying the server's error `code` and `message`, chosen from the HTTP status."""

from __future__ import annotations

from typing import Any


class AkiDBError(Exception):
    """Base of every error the client raises."""

    def __init__(self, message: str, *, code: str = "error", status: int | None = None) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class ConnectionFailed(AkiDBError):
    """The server could not be reached, or the connection broke (after any retries)."""


class BadRequest(AkiDBError):
    """400: the request was refused as invalid (`invalid_input`, `invalid_filter`...)."""


class Unauthorized(AkiDBError):
    """401: an API key is needed, or the one given is wrong."""


class Forbidden(AkiDBError):
    """403: the key may not do this."""


class NotFound(AkiDBError):
    """404: `collection_not_found`, `document_not_found`, `model_not_found` or an unknown route."""


class Conflict(AkiDBError):
    """409: valid, but refused in the server's current state: `collection_exists`, `model_not_served`,
    `job_conflict`."""


class PayloadTooLarge(AkiDBError):
    """413: the body is over the server's `server.max_body_bytes`; send smaller batches."""


class RateLimited(AkiDBError):
    """429: too many requests (after the retry budget was spent)."""


class ServerError(AkiDBError):
    """500 or any other 5xx not listed below: a server bug."""


class UpstreamFailed(ServerError):
    """502: a worker failed the job."""


class Unavailable(ServerError):
    """503: no worker, queue full or not ready (after the retry budget was spent)."""


class Timeout(ServerError):
    """504: the server gave up waiting for a worker."""


_BY_STATUS: dict[int, type[AkiDBError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    502: UpstreamFailed,
    503: Unavailable,
    504: Timeout,
}


def error_for(status: int, body: Any) -> AkiDBError:
    """The exception for an error response: its class from the status, code and message from the body."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message = str(error.get("code", "error")), str(error.get("message", ""))
    else:
        code, message = "http_error", f"HTTP {status}" + (f": {str(body)[:200]}" if body else "")
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else BadRequest)
    return cls(message, code=code, status=status)
