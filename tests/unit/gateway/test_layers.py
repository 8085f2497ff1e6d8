"""The gateway's layers hold by themselves: read every module's imports from its source (nothing is imported).

api → services → transport → dispatch → storage: each package imports only the ones below it.
errors.py and metrics.py serve every layer and import none of them, but the lower layers' own error
values they map. app.py, main.py and __main__.py compose everything and may import anything. Only
transport/ imports zmq; the sans-IO core (dispatch/, and whatever gateway or shared module it pulls in)
imports no asyncio, zmq, time, grpc or aiohttp; services/ imports no aiohttp or zmq, even through a
lower module, and no grpc itself (errors.py carries each error's gRPC status for the edge to use).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import gateway

ROOT = Path(gateway.__file__).parent.parent
LAYERS = ["storage", "dispatch", "transport", "services", "api"]  # bottom first
SHARED = {"errors", "metrics"}
COMPOSITION = {"app", "main", "__main__", "__init__"}
# The only gateway modules errors.py may import: the lower layers' own error values it maps to API errors.
MAPPED = {"gateway.storage.errors", "gateway.dispatch.failures"}


def imports(source: str) -> list[str]:
    """Every module a source file imports, by its dotted name (`from a import b` counts `a.b` if that is
    one of ours, else `a`), anywhere in the file: under `if TYPE_CHECKING`, in a function, at the top."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import: the layers check reads absolute names only"
            assert node.module
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append(sub if _path(sub) is not None else node.module)
    return found


def _path(module: str) -> Path | None:
    """The source file of one of our modules (gateway, shared), else None."""
    if module.split(".")[0] not in ("gateway", "shared"):
        return None
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def direct(module: str) -> tuple[str, ...]:
    path = _path(module)
    return () if path is None else tuple(imports(path.read_text()))


@cache
def reached(module: str) -> frozenset[str]:
    """Everything `module` imports, and what our modules among those import, all the way down."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for name in direct(todo.pop()):
            for parent in _parents(name):  # importing a.b.c runs a/__init__ and a/b/__init__ first
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
    return frozenset(seen)


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def modules(under: str = "") -> list[str]:
    """The dotted names of the gateway's modules (under a package, if given)."""
    base = ROOT / "gateway" / under if under else ROOT / "gateway"
    names = []
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def layer(module: str) -> str:
    """`api`, `services`, ...; `errors`/`metrics` for those two; `app` etc. for the composition modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def top_level(name: str) -> str:
    return name.split(".")[0]


def uses(module: str, banned: set[str], *, through: bool) -> list[str]:
    """Which of the `banned` top-level packages `module` imports (`through` our modules it imports too)."""
    names = reached(module) if through else set(direct(module))
    return sorted({top_level(n) for n in names} & banned)


# ---- the checker itself


def test_the_reader_sees_every_kind_of_import() -> None:
    source = "import gateway.errors\nfrom gateway import metrics\nfrom gateway.dispatch.batcher import Pending\n"
    source += "import zmq.asyncio as za\nif True:\n    from gateway.services.embedding import EmbedRequest\n"
    source += "def f():\n    import time\n"
    assert sorted(imports(source)) == [
        "gateway.dispatch.batcher",
        "gateway.errors",
        "gateway.metrics",
        "gateway.services.embedding",
        "time",
        "zmq.asyncio",
    ]


def test_the_reach_follows_our_modules_and_their_packages() -> None:
    assert {"gateway.dispatch", "gateway.dispatch.batcher", "numpy"} <= reached("gateway.dispatch.dispatcher")
    assert "grpc" in reached("gateway.services.embedding")  # through gateway.errors: why grpc is checked directly
    assert "zmq" in reached("gateway.app")


def test_every_module_is_in_a_layer() -> None:
    known = set(LAYERS) | SHARED | COMPOSITION
    assert {layer(m) for m in modules()} <= known
    assert {layer(m) for m in modules()} >= set(LAYERS)


# ---- the rules


def test_each_layer_imports_only_the_layers_below_it() -> None:
    upward = {}
    for module in modules():
        own = layer(module)
        if own not in LAYERS:
            continue
        allowed = set(LAYERS[: LAYERS.index(own) + 1]) | SHARED
        bad = [n for n in direct(module) if top_level(n) == "gateway" and layer(n) not in allowed]
        if bad:
            upward[module] = bad
    assert upward == {}


def test_errors_and_metrics_import_no_layer_but_the_error_values_errors_maps() -> None:
    found = {m: [n for n in direct(m) if top_level(n) == "gateway"] for m in ("gateway.errors", "gateway.metrics")}
    assert set(found["gateway.errors"]) <= MAPPED and found["gateway.metrics"] == []


def test_only_the_transport_imports_zmq() -> None:
    importers = {m for m in modules() if uses(m, {"zmq"}, through=False)}
    assert importers == {"gateway.transport.router", "gateway.transport.curve"}


@pytest.mark.parametrize("module", modules("dispatch"))
def test_the_dispatch_core_reaches_no_io_and_no_clock(module: str) -> None:
    assert uses(module, {"asyncio", "zmq", "time", "grpc", "aiohttp"}, through=True) == []


@pytest.mark.parametrize("module", modules("services"))
def test_services_reach_no_http_or_zmq_and_import_no_grpc(module: str) -> None:
    assert uses(module, {"aiohttp", "zmq"}, through=True) == []
    assert uses(module, {"grpc"}, through=False) == []


def test_storage_imports_no_gateway_module_outside_storage_even_through_another() -> None:
    climbing = {
        m: sorted(n for n in reached(m) if top_level(n) == "gateway" and layer(n) not in ("storage", "__init__"))
        for m in modules("storage")
    }
    assert {m: names for m, names in climbing.items() if names} == {}
