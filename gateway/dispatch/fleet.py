"""The read-only view of workers and models that routes, health, gRPC and collections read.

The dispatcher's registry stands behind it; nothing here changes state, so readers can never
disturb dispatch, and the registry can change shape without touching them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.dispatch.batcher import Batcher
from gateway.dispatch.workers import WorkerRegistry
from shared.protocol import ModelInfo


@dataclass(frozen=True)
class WorkerSummary:
    """One live worker as it announced itself: its own facts, never another worker's."""

    worker_id: str
    host: str
    pid: int
    models: tuple[str, ...]
    backend: str
    device: str
    precision: str
    capacity: int
    inflight: int


@dataclass(frozen=True)
class ModelWorker:
    """One live worker serving one model, with that worker's own facts for it."""

    worker_id: str
    host: str
    pid: int
    backend: str
    device: str
    precision: str


class WorkerView:
    """Which models are served, their facts, and the live workers behind them."""

    def __init__(self, registry: WorkerRegistry, queue: Batcher | None = None) -> None:
        self._registry = registry
        self._queue = queue

    def queued_texts(self) -> int:
        """Texts waiting for a worker, all models together."""
        return self._queue.queued_texts if self._queue is not None else 0

    def models(self) -> list[ModelInfo]:
        """Every model announced since start, sorted by name."""
        return sorted(self._registry.known.values(), key=lambda m: m.name)

    def model_info(self, name: str) -> ModelInfo | None:
        """An announced model by canonical name or alias (case-insensitive), else None."""
        canonical = self._registry.resolve(name)
        return self._registry.known.get(canonical) if canonical else None

    def resolve(self, name: str) -> str | None:
        """The canonical name of an announced model, else None."""
        return self._registry.resolve(name)

    def live_workers(self, model: str) -> int:
        """Live workers serving `model` (its canonical name)."""
        return self._registry.count(model)

    def worker_count(self) -> int:
        """All live workers, whatever they serve."""
        return len(self._registry.workers)

    def serving(self, model: str) -> list[ModelWorker]:
        """The live workers serving `model` (canonical name), each as it announced that model."""
        rows = [
            ModelWorker(w.worker_id, w.ready.host, w.ready.pid, m.backend, m.device or w.ready.device, m.precision)
            for w in self._registry.workers.values()
            for m in w.ready.models
            if m.name == model
        ]
        return sorted(rows, key=lambda r: (r.worker_id, r.host, r.pid))

    def workers(self) -> list[WorkerSummary]:
        """One summary per live worker process, sorted by worker id, host and pid."""
        rows = []
        for w in self._registry.workers.values():
            first = w.ready.models[0]
            rows.append(
                WorkerSummary(
                    worker_id=w.worker_id,
                    host=w.ready.host,
                    pid=w.ready.pid,
                    models=tuple(m.name for m in w.ready.models),
                    backend=first.backend,
                    device=first.device or w.ready.device,
                    precision=first.precision,
                    capacity=w.ready.capacity,
                    inflight=len(w.inflight),
                )
            )
        return sorted(rows, key=lambda r: (r.worker_id, r.host, r.pid))
