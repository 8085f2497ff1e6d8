"""The worker registry: least-loaded choice, suspects kept alone, aliases, expiry, namesakes."""

from __future__ import annotations

from gateway.dispatch.workers import WorkerRegistry
from shared.protocol import ModelInfo, Ready


def ready(worker_id: str, model: str = "all-MiniLM-L6-v2", capacity: int = 2) -> Ready:
    return Ready(worker_id, (ModelInfo(model, 384, 256, "mean", ("minilm",)),), "cpu", capacity)


def test_pick_prefers_the_least_loaded_worker_with_a_free_slot() -> None:
    reg = WorkerRegistry()
    reg.register(b"a", ready("a"), 0.0)
    reg.register(b"b", ready("b"), 0.0)
    reg.get(b"a").inflight.update({1})  # type: ignore[union-attr]
    assert reg.pick("all-MiniLM-L6-v2").identity == b"b"  # type: ignore[union-attr]
    reg.get(b"b").inflight.update({2, 3})  # type: ignore[union-attr]
    assert reg.pick("all-MiniLM-L6-v2").identity == b"a"  # type: ignore[union-attr]
    reg.get(b"a").inflight.add(4)  # type: ignore[union-attr]
    assert reg.pick("all-MiniLM-L6-v2") is None  # every slot taken
    assert reg.pick("other-model") is None


def test_resolve_knows_names_aliases_and_registry_aliases() -> None:
    reg = WorkerRegistry()
    assert reg.resolve("all-MiniLM-L6-v2") is None
    reg.register(b"a", ready("a"), 0.0)
    assert reg.resolve("MINILM") == "all-MiniLM-L6-v2"
    assert reg.resolve("sentence-transformers/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert reg.resolve("unknown") is None


def test_reregistering_returns_the_old_sessions_jobs() -> None:
    reg = WorkerRegistry()
    reg.register(b"a", ready("a"), 0.0)
    reg.get(b"a").inflight.update({5, 6})  # type: ignore[union-attr]
    assert reg.register(b"a", ready("a"), 1.0) == {5, 6}
    assert reg.get(b"a").inflight == set()  # type: ignore[union-attr]


def test_expired_and_remove() -> None:
    reg = WorkerRegistry()
    reg.register(b"old", ready("old"), 0.0)
    reg.register(b"new", ready("new"), 9.0)
    assert [w.identity for w in reg.expired(10.0, 3.0)] == [b"old"]
    reg.remove(b"old")
    assert reg.count("all-MiniLM-L6-v2") == 1
    assert "all-MiniLM-L6-v2" in reg.known  # still known after its workers leave


def test_a_solo_worker_takes_nothing_else_and_idle_only_skips_busy_workers() -> None:
    reg = WorkerRegistry()
    reg.register(b"a", ready("a", capacity=4), 0.0)
    reg.register(b"b", ready("b", capacity=4), 0.0)
    reg.get(b"a").inflight.add(1)  # type: ignore[union-attr]
    reg.get(b"a").solo = True  # type: ignore[union-attr]
    reg.get(b"b").inflight.update({2, 3})  # type: ignore[union-attr]
    assert reg.pick("all-MiniLM-L6-v2").identity == b"b"  # type: ignore[union-attr]
    assert reg.pick("all-MiniLM-L6-v2", idle_only=True) is None
    reg.register(b"c", ready("c"), 0.0)
    assert reg.pick("all-MiniLM-L6-v2", idle_only=True).identity == b"c"  # type: ignore[union-attr]


def test_namesakes_are_other_processes_with_the_same_worker_id() -> None:
    reg = WorkerRegistry()
    reg.register(b"w0/1/aa", ready("w0"), 0.0)
    reg.register(b"w0/2/bb", ready("w0"), 0.0)
    reg.register(b"w1/3/cc", ready("w1"), 0.0)
    assert [w.identity for w in reg.namesakes(b"w0/2/bb", "w0")] == [b"w0/1/aa"]
    assert reg.count("all-MiniLM-L6-v2") == 3
