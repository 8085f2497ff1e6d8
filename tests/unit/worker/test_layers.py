"""The worker's layers, read from the source: the session stays sans-IO, and only the IO thread touches zmq."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parents[3] / "worker"
# What a policy object that takes `now` as an argument has no use for.
IO_MODULES = {"zmq", "asyncio", "time", "threading", "grpc", "socket", "selectors"}
# The worker's IO modules, the only ones that may speak ZeroMQ: the poll loop (connection) and each
# gateway's socket (link). Everything else reaches the sockets through them.
ZMQ_OWNERS = {"connection.py", "link.py"}


def imported_roots(path: Path) -> set[str]:
    """The top-level package of every import in `path`, wherever it sits (functions, TYPE_CHECKING)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_session_imports_no_io() -> None:
    assert imported_roots(WORKER / "session.py") & IO_MODULES == set()


def worker_modules() -> list[Path]:
    return sorted(p for p in WORKER.rglob("*.py"))


@pytest.mark.parametrize("path", worker_modules(), ids=lambda p: str(p.relative_to(WORKER)))
def test_only_the_io_thread_imports_zmq(path: Path) -> None:
    allowed = path.relative_to(WORKER).as_posix() in ZMQ_OWNERS
    assert allowed or "zmq" not in imported_roots(path), f"{path.name} imports zmq: that is {sorted(ZMQ_OWNERS)}'s"


@pytest.mark.parametrize("owner", sorted(ZMQ_OWNERS))
def test_the_check_sees_imports(owner: str) -> None:
    """A check that could not fail is worse than none: it must see each IO module's zmq."""
    assert "zmq" in imported_roots(WORKER / owner)
