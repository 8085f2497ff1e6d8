"""Which gateway a client talks to: several URLs of one AkiDB, and a move to the next when one fails.

Several stateless gateways can serve one database (docs/scale-out.md). A client given their URLs sticks
to one while it answers; a connection failure or a 503 moves it to the next, for every later call too,
and the retry policy decides whether the failed call itself may be sent again (a read or an upsert
with ids may; a create that may have reached the server may not). No IO here: the clients call it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

DEFAULT_URL = "http://localhost:8080"


def gateway_urls(url: str | Sequence[str] | None) -> tuple[str, ...]:
    """The base URLs: `url` (one, a comma-separated list, or a sequence), else AKIDB_URL, else the default."""
    given = url if url is not None else (os.environ.get("AKIDB_URL") or DEFAULT_URL)
    parts = [given] if isinstance(given, str) else list(given)
    urls = tuple(u.strip().rstrip("/") for part in parts for u in part.split(",") if u.strip())
    if not urls:
        raise ValueError("no gateway URL given (url, or AKIDB_URL as one URL or several separated by commas)")
    return urls


class Gateways:
    """The gateways in order, and the one in use; `failed` moves to the next (thread-safe enough: one int)."""

    def __init__(self, urls: tuple[str, ...]) -> None:
        self.urls = urls
        self._at = 0

    @property
    def current(self) -> str:
        return self.urls[self._at]

    def url(self, path: str, base: str | None = None) -> str:
        """An absolute URL for a path on `base` (default: the gateway in use)."""
        return (base or self.current) + path

    def failed(self, base: str) -> None:
        """`base` refused or failed a call: use the next gateway from now on (unless another call already moved)."""
        if self.urls[self._at] == base:
            self._at = (self._at + 1) % len(self.urls)

    def __str__(self) -> str:
        return ",".join(self.urls)
