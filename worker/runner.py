"""The worker's compute loop: job in, embed, result (or error) out."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from shared.protocol import Error, ErrorCode, Job, Message, ModelInfo, Result
from worker.embedder import Embedded
from worker.jobs import Assignment

log = structlog.get_logger("worker.runner")


class FatalWorkerError(Exception):
    """The model failed mid-job (out of memory, an engine error): the process must restart."""

    def __init__(self, reply: Error) -> None:
        super().__init__(reply.message)
        self.reply = reply  # the ERROR the caller gets before the worker leaves


class Model(Protocol):
    """What the compute loop needs of a model: `worker.embedder.Embedder`, or a test's fake."""

    @property
    def info(self) -> ModelInfo: ...

    def embed(self, texts: Sequence[str], pooling: str | None, normalize: bool, prompt: str) -> Embedded: ...


class Runner:
    """Owns the model; runs jobs one at a time, in arrival order, whichever gateway sent them."""

    def __init__(self, model: Model, jobs: queue.Queue[Assignment] | None = None) -> None:
        self.model = model
        self.jobs: queue.Queue[Assignment] = jobs if jobs is not None else queue.Queue()
        self.names = {model.info.name, *model.info.aliases}

    def serve(self, send: Callable[[Assignment, Message], None], stopping: threading.Event) -> None:
        """Run jobs until `stopping` is set, `send`ing each reply. Raises `FatalWorkerError` if the model breaks."""
        while not stopping.is_set():
            try:
                item = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            if item.abandoned:  # its gateway was lost or forgot it: nobody waits for the answer
                log.info("job_skipped", job_id=item.job.job_id, session=item.session)
                continue
            try:
                reply = self.run_job(item.job)
            except FatalWorkerError as exc:
                send(item, exc.reply)  # the caller hears why before the worker leaves
                raise
            send(item, reply)

    def run_job(self, job: Job) -> Message:
        """One job's reply. Only a broken model raises (`FatalWorkerError`); bad jobs get an ERROR."""
        received = time.monotonic()
        if job.model not in self.names:
            return Error(job.job_id, ErrorCode.UNKNOWN_MODEL, f"this worker serves {self.model.info.name!r}")
        if job.deadline_ms <= 0:
            return Error(job.job_id, ErrorCode.DEADLINE_EXCEEDED, "job arrived after its deadline")
        try:
            out = self.model.embed(job.texts, job.pooling, job.normalize, job.prompt)
        except ValueError as exc:  # an unknown pooling, a prompt too long: the job's fault, not the model's
            return Error(job.job_id, ErrorCode.INVALID_JOB, str(exc))
        except Exception as exc:
            log.exception("model_failed", job_id=job.job_id)
            raise FatalWorkerError(Error(job.job_id, ErrorCode.INTERNAL, f"worker model failed: {exc}")) from exc
        compute_ms = (time.monotonic() - received) * 1000
        return Result(job.job_id, out.vectors, tuple(out.token_counts), tuple(out.input_tokens), compute_ms)
