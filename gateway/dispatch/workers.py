"""The live-worker table: who is connected, what they serve, what they hold. No sockets here.

Workers are keyed by their ZeroMQ routing identity, which is unique per process; the
`worker_id` they announce is a human name that two processes may share (two hosts with one
host name), so it is never a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared import models
from shared.protocol import ModelInfo, Ready


@dataclass(eq=False)
class WorkerState:
    identity: bytes
    ready: Ready  # this worker's own announcement: its models' backend, device and precision
    last_seen: float
    inflight: set[int] = field(default_factory=set)
    solo: bool = False  # holds a suspect job, and nothing else until it answers

    @property
    def worker_id(self) -> str:
        return self.ready.worker_id

    @property
    def free_slots(self) -> int:
        return 0 if self.solo else self.ready.capacity - len(self.inflight)

    def serves(self, model: str) -> bool:
        return any(m.name == model for m in self.ready.models)


class WorkerRegistry:
    """Workers by ZeroMQ identity, and every model any worker has announced since start."""

    def __init__(self) -> None:
        self.workers: dict[bytes, WorkerState] = {}
        # canonical name → its first announcement: a later READY never rewrites a model's facts
        # (the dispatcher refuses one with another dimension; backend, device and precision are
        # each worker's own, in its WorkerState.ready).
        self.known: dict[str, ModelInfo] = {}
        self._aliases: dict[str, str] = {}

    def register(self, identity: bytes, ready: Ready, now: float) -> set[int]:
        """Add (or re-add) a worker; returns job ids a previous session of it still held."""
        previous = self.workers.get(identity)
        self.workers[identity] = WorkerState(identity, ready, now)
        for info in ready.models:
            self.known.setdefault(info.name, info)
            self._aliases[info.name.lower()] = info.name
            for alias in info.aliases:
                # First come keeps an alias: a newcomer cannot point another model's name at its own.
                self._aliases.setdefault(alias.lower(), info.name)
        return previous.inflight if previous else set()

    def get(self, identity: bytes) -> WorkerState | None:
        return self.workers.get(identity)

    def namesakes(self, identity: bytes, worker_id: str) -> list[WorkerState]:
        """Other live workers (other processes) that announced the same `worker_id`."""
        return [w for w in self.workers.values() if w.worker_id == worker_id and w.identity != identity]

    def remove(self, identity: bytes) -> WorkerState | None:
        return self.workers.pop(identity, None)

    def expired(self, now: float, timeout_s: float) -> list[WorkerState]:
        return [w for w in self.workers.values() if now - w.last_seen > timeout_s]

    def pick(self, model: str, idle_only: bool = False) -> WorkerState | None:
        """The least-loaded live worker for `model` that has a free slot (and no job at all, if `idle_only`)."""
        best: WorkerState | None = None
        for w in self.workers.values():
            if not w.serves(model) or w.free_slots <= 0 or (idle_only and w.inflight):
                continue
            if best is None or len(w.inflight) < len(best.inflight):
                best = w
        return best

    def count(self, model: str) -> int:
        return sum(1 for w in self.workers.values() if w.serves(model))

    def resolve(self, name: str) -> str | None:
        """The canonical name of a model a worker has announced (by name or alias), else None."""
        return self._aliases.get(name.lower()) or self._aliases.get(models.canonical(name).lower())
