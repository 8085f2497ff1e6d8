"""Plain urllib calls to a gateway process, as curl would make them (optionally over verified TLS)."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

from tests.support.processes import ChildProcess


def call(
    url: str,
    method: str,
    path: str,
    *,
    key: str | None = None,
    body: Any = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request; the status, the headers and the decoded JSON body (None if the body is not JSON)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60, context=context) as resp:
            return resp.status, dict(resp.headers), _json(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), _json(err.read())


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def wait_ready(proc: ChildProcess, url: str, timeout: float = 90, context: ssl.SSLContext | None = None) -> None:
    """Until the gateway process answers GET /ready with 200 (its worker connected)."""
    end = time.monotonic() + timeout
    while True:
        assert proc.proc.poll() is None, f"gateway exited:\n{proc.output()[-3000:]}"
        try:
            if call(url, "GET", "/ready", context=context)[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < end, f"gateway not ready after {timeout}s:\n{proc.output()[-3000:]}"
        time.sleep(0.1)
