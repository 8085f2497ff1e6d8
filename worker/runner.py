"""The worker's compute loop: job in, embed, result (or error) out."""

from __future__ import annotations

import queue
import threading
import time

import structlog
import zmq

from shared.codec import encode
from shared.protocol import Error, ErrorCode, Job, Message, Result
from worker.connection import RESULTS_ENDPOINT
from worker.embedder import Embedder

log = structlog.get_logger("worker.runner")


class FatalWorkerError(Exception):
    """The model failed mid-job (out of memory, an engine error): the process must restart."""


class Runner:
    """Owns the model; runs jobs one at a time, in arrival order."""

    def __init__(self, ctx: zmq.Context, embedder: Embedder, jobs: queue.Queue[Job], crash_marker: str = "") -> None:
        self.embedder = embedder
        # worker.test_crash_marker: lets integration tests take the real fatal path on demand.
        self.crash_marker = crash_marker
        self.jobs = jobs
        self.names = {embedder.info.name, *embedder.info.aliases}
        self.out = ctx.socket(zmq.PUSH)
        self.out.connect(RESULTS_ENDPOINT)

    def serve(self, stopping: threading.Event) -> None:
        """Run jobs until `stopping` is set. Raises `FatalWorkerError` if the model breaks."""
        try:
            while not stopping.is_set():
                try:
                    job = self.jobs.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._send(self.run_job(job))
        finally:
            self.out.close(linger=1000)

    def run_job(self, job: Job) -> Message:
        """One job's reply. Only a broken model raises; bad jobs get an ERROR."""
        received = time.monotonic()
        if job.model not in self.names:
            return Error(job.job_id, ErrorCode.UNKNOWN_MODEL, f"this worker serves {self.embedder.info.name!r}")
        if job.deadline_ms <= 0:
            return Error(job.job_id, ErrorCode.DEADLINE_EXCEEDED, "job arrived after its deadline")
        try:
            if self.crash_marker and any(self.crash_marker in t for t in job.texts):
                raise RuntimeError(f"worker.test_crash_marker {self.crash_marker!r} is in the job (test only)")
            out = self.embedder.embed(job.texts, job.pooling, job.normalize, job.prompt)
        except ValueError as exc:  # an unknown pooling, a prompt too long: the job's fault, not the model's
            return Error(job.job_id, ErrorCode.INVALID_JOB, str(exc))
        except Exception as exc:
            log.exception("model_failed", job_id=job.job_id)
            self._send(Error(job.job_id, ErrorCode.INTERNAL, f"worker model failed: {exc}"))
            raise FatalWorkerError(str(exc)) from exc
        compute_ms = (time.monotonic() - received) * 1000
        return Result(job.job_id, out.vectors, tuple(out.token_counts), tuple(out.input_tokens), compute_ms)

    def _send(self, msg: Message) -> None:
        self.out.send_multipart(encode(msg), copy=False)  # type: ignore[arg-type]
