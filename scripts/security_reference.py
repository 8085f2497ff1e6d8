"""Print docs/security.md's open-route list and scope table, made from gateway/api/auth.py's own tables.

`--write docs/security.md` replaces the blocks between the `security-open:` and `security-scopes:` markers;
tests/unit/test_docs.py fails when they differ from what this prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.api.auth import (
    ADMIN,
    COLLECTION_ELSEWHERE,
    COLLECTION_PARAM,
    GRPC,
    METRICS_ROUTE,
    OPEN_GRPC_SERVICES,
    OPEN_ROUTES,
    READ,
    ROUTE_SCOPES,
    UNSCOPED_ROUTES,
    WRITE,
)

SCOPE_ORDER = {READ: 0, WRITE: 1, ADMIN: 2}


def open_routes() -> str:
    """The bullet list of what answers without a key."""
    rest = ", ".join(f"`{r}`" for r in sorted(OPEN_ROUTES))
    grpc = ", ".join(f"`{s}`" for s in sorted(OPEN_GRPC_SERVICES))
    return "\n".join(
        [
            f"- REST: {rest};",
            f"- `{METRICS_ROUTE}` too when `auth.open_metrics: true` (otherwise it needs `read`, and a key without",
            "  a `collections` limit: its labels name every collection);",
            f"- gRPC: the services {grpc}.",
        ]
    )


def _collection(method: str, route: str) -> str:
    if (method, route) in COLLECTION_ELSEWHERE:
        return COLLECTION_ELSEWHERE[(method, route)]
    if f"{{{COLLECTION_PARAM}}}" in route:
        return "the path's `{collection}` (a name or an id)"
    if route in UNSCOPED_ROUTES:
        return "refused to a key with `collections`"
    return "—"


def scope_table() -> str:
    """One row per route: the scope it needs and which collection a scoped key is checked against."""
    lines = ["| route | scope | a key's `collections` are checked against |", "|---|---|---|"]
    rows = sorted(ROUTE_SCOPES.items(), key=lambda kv: (SCOPE_ORDER[kv[1]], kv[0][0] == GRPC, kv[0][1], kv[0][0]))
    for (method, route), scope in rows:
        shown = f"gRPC `{route}`" if method == GRPC else f"`{method} {route}`"
        lines.append(f"| {shown} | `{scope}` | {_collection(method, route)} |")
    lines.append("| any other route | `admin` | — |")
    return "\n".join(lines)


BLOCKS = {"security-open": open_routes, "security-scopes": scope_table}


def write(doc: Path) -> None:
    """Replace every generated block between its `<!-- NAME:start -->` and `<!-- NAME:end -->` markers."""
    text = doc.read_text()
    for name, make in BLOCKS.items():
        start = text.index("\n", text.index(f"<!-- {name}:start")) + 1
        end = text.index(f"<!-- {name}:end -->")
        text = text[:start] + make() + "\n" + text[end:]
    doc.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        write(Path(sys.argv[2]))
    else:
        print(open_routes() + "\n\n" + scope_table())
