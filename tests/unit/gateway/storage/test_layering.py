"""Storage is a lower layer: nothing under gateway/storage imports the gateway's HTTP, gRPC or embedding code."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway.storage

STORAGE = Path(gateway.storage.__file__).parent


def gateway_imports(source: str) -> list[str]:
    """Every `gateway...` module a source file imports, by its dotted name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "gateway"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "gateway":  # `from gateway import x` imports gateway.x
                found += [f"gateway.{a.name}" for a in node.names]
            elif node.module.startswith("gateway."):
                found.append(node.module)
    return found


def outside_storage(name: str) -> bool:
    return name != "gateway.storage" and not name.startswith("gateway.storage.")


def test_the_check_sees_imports_from_above() -> None:
    source = "import gateway.errors\nfrom gateway import keys\nfrom gateway.validation import json_type\n"
    source += "from gateway.storage.db import DocumentStore\n"
    source += "if True:\n    from gateway.services.embedding import EmbedRequest\n"
    names = [n for n in gateway_imports(source) if outside_storage(n)]
    assert names == ["gateway.errors", "gateway.keys", "gateway.validation", "gateway.services.embedding"]


def test_no_storage_module_imports_gateway_code_outside_storage() -> None:
    modules = sorted(STORAGE.rglob("*.py"))
    assert {p.name for p in modules} >= {"db.py", "index.py", "collection.py", "filters.py", "errors.py"}
    upward = {
        str(path.relative_to(STORAGE)): names
        for path in modules
        if (names := [n for n in gateway_imports(path.read_text()) if outside_storage(n)])
    }
    assert upward == {}


def test_storage_has_no_relative_imports_that_could_climb_out() -> None:
    for path in STORAGE.rglob("*.py"):
        levels = [n.level for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)]
        assert all(level == 0 for level in levels), path
