"""The worker's compute loop: job in, embed or score pairs (by the model's kind), result (or error) out."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, cast

import numpy as np
import structlog

from shared.protocol import Error, ErrorCode, Job, Message, ModelInfo, Result
from worker.embedder import Embedded
from worker.jobs import Assignment
from worker.pairs import Pair
from worker.reranker import Scored

log = structlog.get_logger("worker.runner")


class FatalWorkerError(Exception):
    """The model failed mid-job (out of memory, an engine error): the process must restart."""

    def __init__(self, reply: Error) -> None:
        super().__init__(reply.message)
        self.reply = reply  # the ERROR the caller gets before the worker leaves


class EmbedModel(Protocol):
    """What the compute loop needs of an embedding model: `worker.embedder.Embedder`, or a test's fake."""

    @property
    def info(self) -> ModelInfo: ...

    def embed(self, texts: Sequence[str], pooling: str | None, normalize: bool, prompt: str) -> Embedded: ...


class RerankModel(Protocol):
    """What it needs of a reranker (`info.kind == "rerank"`): `worker.reranker.Reranker`, or a test's fake."""

    @property
    def info(self) -> ModelInfo: ...

    def score(self, pairs: Sequence[Pair]) -> Scored: ...


Model = EmbedModel | RerankModel


def compute(model: Model, job: Job) -> tuple[np.ndarray, list[int], list[int]]:
    """The job's rows, token counts and lengths before truncation; a rerank job's rows are one logit each."""
    if job.is_rerank:
        scored = cast(RerankModel, model).score(job.pairs())
        return scored.logits.reshape(-1, 1), scored.token_counts, scored.input_tokens
    out = cast(EmbedModel, model).embed(job.texts, job.pooling, job.normalize, job.prompt)
    return out.vectors, out.token_counts, out.input_tokens


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
        if job.is_rerank != (self.model.info.kind == "rerank"):
            wanted = "rerank" if job.is_rerank else "embedding"
            info = self.model.info
            message = f"this worker serves {info.name!r}, a model of kind {info.kind!r}: it takes no {wanted} jobs"
            return Error(job.job_id, ErrorCode.INVALID_JOB, message)
        if job.deadline_ms <= 0:
            return Error(job.job_id, ErrorCode.DEADLINE_EXCEEDED, "job arrived after its deadline")
        try:
            rows, counts, input_tokens = compute(self.model, job)
        except ValueError as exc:  # an unknown pooling, a prompt or query too long: the job's fault
            return Error(job.job_id, ErrorCode.INVALID_JOB, str(exc))
        except Exception as exc:
            log.exception("model_failed", job_id=job.job_id)
            raise FatalWorkerError(Error(job.job_id, ErrorCode.INTERNAL, f"worker model failed: {exc}")) from exc
        compute_ms = (time.monotonic() - received) * 1000
        return Result(job.job_id, rows, tuple(counts), tuple(input_tokens), compute_ms)
