"""The embedding service over the in-memory transport, with helpers that speak for workers.

No sockets and no processes: `gateway.transport.loopback.Loopback` runs the real dispatcher and the
real action runner, and the jobs it would send wait here until a test answers them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry

from gateway.metrics import Metrics
from gateway.services.embedding import EmbeddingService
from gateway.transport.loopback import Loopback
from shared.config import load_config
from shared.protocol import Job, Message, ModelInfo, Ready, Result

MODEL = "all-MiniLM-L6-v2"
INFO = ModelInfo(MODEL, 4, 16, "mean", ("minilm",), "fake", "cpu", "f32")


def result_for(job: Job) -> Result:
    """A fake model's answer: row i is [len(text), i, 0, 1], two tokens per text."""
    rows = np.array([[len(t), i, 0, 1] for i, t in enumerate(job.texts)], dtype=np.float32)
    counts = tuple(2 for _ in job.texts)
    return Result(job.job_id, rows, counts, counts, 1.0)


class LoopbackFleet:
    """A `Loopback` transport with its config and metrics; create it on a running event loop."""

    def __init__(self, *overrides: str) -> None:
        self.cfg = load_config(None, {}, list(overrides))
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.transport = Loopback(self.cfg, self.metrics)

    def service(self) -> EmbeddingService:
        return EmbeddingService(self.cfg, self.transport, self.metrics)

    @property
    def sent(self) -> list[tuple[bytes, Job]]:
        """The jobs sent and not yet answered, oldest first, with the identity each went to."""
        return [(s.identity, s.msg) for s in self.transport.sent if isinstance(s.msg, Job)]

    def receive(self, identity: bytes, msg: Message) -> None:
        self.transport.receive(identity, msg)

    def worker_up(self, identity: bytes = b"w", capacity: int = 2, info: ModelInfo = INFO) -> None:
        self.receive(identity, Ready(identity.decode(), (info,), "cpu", capacity))

    def answer_all(self, answer: Callable[[Job], Message] = result_for) -> None:
        """Answer every job, the last sent first (the service must reorder), and those the answers free up."""
        while jobs := self.transport.take_jobs():
            for identity, job in reversed(jobs):
                self.receive(identity, answer(job))
