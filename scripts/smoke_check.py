"""Check a running AkiDB: /health, /ready, /embed, /metrics; exit 0 if all pass.

Usage: smoke_check.py URL [TIMEOUT_S]
"""

from __future__ import annotations

import json
import math
import sys
import time
import urllib.error
import urllib.request


def call(url: str, body: dict | None = None) -> tuple[int, bytes]:  # type: ignore[type-arg]
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def main() -> int:
    base = sys.argv[1].rstrip("/")
    wait_s = float(sys.argv[2]) if len(sys.argv) > 2 else 120
    end = time.time() + wait_s
    while True:
        try:
            status, body = call(base + "/ready")
        except OSError:
            status, body = 0, b"connection refused"
        if status == 200:
            break
        if time.time() > end:
            print(f"FAIL /ready: {status} {body[:200]!r} after {wait_s:g}s")
            return 1
        time.sleep(0.5)
    print(f"ok   /ready {json.loads(body)}")
    checks = 0
    status, body = call(base + "/health")
    assert status == 200 and json.loads(body)["status"] == "ok", (status, body)
    print("ok   /health")
    checks += 1
    status, body = call(base + "/embed", {"texts": ["AkiDB smoke test", "a second sentence"]})
    assert status == 200, (status, body[:300])
    out = json.loads(body)
    assert len(out["embeddings"]) == 2 and len(out["embeddings"][0]) == out["dimension"], out.keys()
    norm = math.sqrt(sum(x * x for x in out["embeddings"][0]))
    assert abs(norm - 1) < 1e-3, norm
    print(f"ok   /embed model={out['model']} dimension={out['dimension']} usage={out['usage']}")
    checks += 1
    status, body = call(base + "/metrics")
    text = body.decode()
    assert status == 200 and "akidb_embedding_requests_total" in text and "akidb_workers_connected" in text
    print("ok   /metrics")
    checks += 1
    print(f"smoke test passed ({checks + 1} checks) against {base}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except AssertionError as exc:
        print(f"FAIL {exc}")
        raise SystemExit(1) from None
