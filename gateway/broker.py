"""The gateway's side of the wire: the ROUTER socket, worker liveness, and job dispatch.

The broker alone owns the worker registry, the queue and the job table. Every method runs
on the event loop thread and none of them awaits, so no two of them interleave: that is
what makes the single owner. Handlers only call `submit` and await the future it filled.

Dispatch is continuous batching: a worker with no job gets the queue's head at once (a
lone request never waits for the window); while every worker is busy, chunks coalesce
until `max_batch_size` texts or until the oldest has waited `batch_timeout_ms`, and then
go to the least-loaded worker that has a free slot (a worker holds up to `capacity` jobs,
so it always has the next batch in hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import typing
from dataclasses import dataclass

import numpy as np
import structlog
import zmq

from gateway.batcher import Batcher, ChunkResult, Pending
from gateway.errors import ApiError, InvalidInput, NoWorker, QueueFull, Timeout, WorkerFailed
from gateway.metrics import Metrics
from gateway.workers import WorkerRegistry, WorkerState
from shared.codec import ProtocolError, decode, encode
from shared.config import Config
from shared.protocol import Disconnect, Error, ErrorCode, Heartbeat, Job, Message, ModelInfo, Ready, Result

log = structlog.get_logger("gateway.broker")

# Frames handled per wake-up before yielding to the loop, so a flood of results cannot
# starve HTTP handlers.
DRAIN_BATCH = 256


def _fd(sock: zmq.Socket) -> int:
    return typing.cast(int, sock.getsockopt(zmq.FD))


def _readable(sock: zmq.Socket) -> bool:
    return bool(typing.cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)


@dataclass(eq=False)
class InFlight:
    job_id: int
    identity: bytes
    model: str
    items: list[Pending]
    size: int


class Broker:
    """ROUTER socket + worker registry + queue + job table, with one owner: the event loop."""

    def __init__(self, cfg: Config, metrics: Metrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.registry = WorkerRegistry()
        self.batcher = Batcher(cfg.batching.max_batch_size, cfg.batching.max_queue_texts)
        self.jobs: dict[int, InFlight] = {}
        self.endpoint = cfg.zmq.bind
        self._interval = cfg.heartbeat.interval_ms / 1000
        self._expiry = self._interval * cfg.heartbeat.liveness
        self._window = cfg.batching.batch_timeout_ms / 1000
        # A random start per gateway: a worker may still hold a job from a previous gateway (a
        # restart) and deliver it here; with ids from 1 again its reply would match a new job.
        self._job_ids = itertools.count(random.getrandbits(48))
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._ticker: asyncio.Task[None] | None = None

    # ---- lifecycle

    async def start(self) -> None:
        """Bind the ROUTER socket and start the heartbeat task."""
        self._loop = asyncio.get_running_loop()
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.ROUTER)
        # MANDATORY: sending to a vanished worker raises instead of silently dropping the job.
        # HANDOVER: a worker that reconnects under the same id takes its identity back.
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.cfg.zmq.bind)
        self._sock = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._loop.add_reader(_fd(sock), self._drain)
        self._ticker = asyncio.create_task(self._tick_forever(), name="akidb-broker-tick")
        log.info("broker_listening", endpoint=self.endpoint)
        self._drain()

    async def close(self) -> None:
        """Stop ticking, fail whatever is still waiting, and close the socket."""
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for timer in self._timers.values():
            timer.cancel()
        gone = NoWorker("the gateway is shutting down")
        for job in self.jobs.values():
            self._fail(job.items, gone)
        for model in self.batcher.models():
            self._fail(self.batcher.take_all(model), gone)
        if self._sock is not None:
            self._loop.remove_reader(_fd(self._sock))
            self._sock.close()
        if self._ctx is not None:
            self._ctx.term()

    # ---- what the embedding service calls

    def model_info(self, name: str) -> ModelInfo | None:
        """A model some worker has announced since start (by name or alias)."""
        canonical = self.registry.resolve(name)
        return self.registry.known.get(canonical) if canonical else None

    def live_workers(self, model: str) -> int:
        return self.registry.count(model)

    def submit(self, item: Pending) -> None:
        """Queue a chunk (and dispatch at once if a worker is free). Raises `QueueFull`."""
        if not self.batcher.has_room(len(item.texts)):
            self.metrics.abandoned.inc(self.batcher.purge_all())
            if not self.batcher.has_room(len(item.texts)):
                self.metrics.queue_depth.set(self.batcher.queued_texts)
                raise QueueFull(
                    f"the embedding queue is full ({self.batcher.queued_texts} texts waiting, "
                    f"batching.max_queue_texts={self.batcher.max_queue_texts}); retry shortly or add workers"
                )
        self.batcher.add(item)
        self._pump(item.model)

    # ---- dispatch

    def _pump(self, model: str) -> None:
        """Send jobs while there is queued work and a worker slot; else arm the window timer."""
        timer = self._timers.pop(model, None)
        if timer:
            timer.cancel()
        while True:
            self.metrics.abandoned.inc(self.batcher.purge(model))
            head = self.batcher.head(model)
            if head is None:
                break
            worker = self.registry.pick(model)
            if worker is None:
                break  # a RESULT, READY or expiry pumps again
            now = self._loop.time()
            if (
                worker.inflight
                and now - head.enqueued < self._window
                and self.batcher.ready_texts(model) < self.batcher.max_batch_size
            ):
                self._timers[model] = self._loop.call_at(head.enqueued + self._window, self._pump, model)
                break
            self._dispatch(worker, model, self.batcher.take(model))
        self.metrics.queue_depth.set(self.batcher.queued_texts)

    def _dispatch(self, worker: WorkerState, model: str, items: list[Pending]) -> None:
        job_id = next(self._job_ids)
        texts = tuple(t for item in items for t in item.texts)
        deadline_ms = int((max(i.deadline for i in items) - self._loop.time()) * 1000)
        job = Job(job_id, model, texts, items[0].pooling, items[0].normalize, deadline_ms)
        if not self._send(worker.identity, job):
            self._drop_worker(worker, "unreachable")
            self.batcher.requeue(items)
            return
        worker.inflight.add(job_id)
        self.jobs[job_id] = InFlight(job_id, worker.identity, model, items, len(texts))
        self.metrics.batch_size.labels(model).observe(len(texts))

    def _pump_all(self) -> None:
        for model in self.batcher.models():
            self._pump(model)

    # ---- socket IO

    def _send(self, identity: bytes, msg: Message) -> bool:
        """Send without blocking; False if the peer is gone or not reading."""
        assert self._sock is not None
        try:
            self._sock.send_multipart([identity, *encode(msg)], flags=zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as exc:
            log.warning("send_failed", worker=identity.decode(errors="replace"), error=str(exc))
            return False
        # The ZeroMQ fd is edge-triggered: a send can consume the readable edge, so look again.
        if _readable(self._sock):
            self._loop.call_soon(self._drain)
        return True

    def _drain(self) -> None:
        sock = self._sock
        if sock is None or sock.closed:
            return
        for _ in range(DRAIN_BATCH):
            if not _readable(sock):
                return
            frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            self._on_frames(frames)
        self._loop.call_soon(self._drain)

    def _on_frames(self, frames: list[zmq.Frame]) -> None:
        identity = frames[0].bytes
        try:
            msg = decode(frames[1:])
        except ProtocolError as exc:
            self.metrics.frames_dropped.inc()
            log.warning("frame_dropped", worker=identity.decode(errors="replace"), reason=str(exc))
            return
        if isinstance(msg, Ready):
            self._on_ready(identity, msg)
            return
        worker = self.registry.get(identity)
        if worker is None:
            if not isinstance(msg, Disconnect):
                # Unknown to us (we restarted, or expired it): ask it to register again.
                self._send(identity, Disconnect(reason="unknown worker; send READY"))
            return
        worker.last_seen = self._loop.time()
        if isinstance(msg, Result):
            self._on_result(worker, msg)
        elif isinstance(msg, Error):
            self._on_error(worker, msg)
        elif isinstance(msg, Disconnect):
            self._drop_worker(worker, "disconnected")
            self._pump_all()
        elif isinstance(msg, Job):
            log.warning("frame_dropped", worker=worker.worker_id, reason="workers do not send JOB")

    def _on_ready(self, identity: bytes, ready: Ready) -> None:
        if ready.capacity < 1 or not ready.models:
            log.warning("frame_dropped", worker=ready.worker_id, reason="READY without models or capacity")
            return
        for job_id in self.registry.register(identity, ready, self._loop.time()):
            self._requeue(job_id)
        self._count_workers()
        log.info(
            "worker_ready",
            worker_id=ready.worker_id,
            models=[m.name for m in ready.models],
            device=ready.device,
            backend=ready.models[0].backend,
            capacity=ready.capacity,
            host=ready.host,
        )
        self._pump_all()

    def _take_job(self, worker: WorkerState, job_id: int) -> InFlight | None:
        job = self.jobs.get(job_id)
        if job is None or job.identity != worker.identity:
            # Requeued after this worker was expired, and maybe already answered by another.
            log.info("stale_reply_dropped", worker_id=worker.worker_id, job_id=job_id)
            return None
        del self.jobs[job_id]
        worker.inflight.discard(job_id)
        return job

    def _on_result(self, worker: WorkerState, msg: Result) -> None:
        job = self._take_job(worker, msg.job_id)
        if job is None:
            return
        self.metrics.worker_compute.labels(job.model).observe(msg.compute_ms / 1000)
        if msg.embeddings.shape[0] != job.size:
            self._fail(job.items, WorkerFailed(f"worker {worker.worker_id} returned {msg.embeddings.shape[0]} rows"))
        else:
            self._deliver(job.items, msg)
        self._pump(job.model)

    def _deliver(self, items: list[Pending], msg: Result) -> None:
        offset = 0
        for item in items:
            n = len(item.texts)
            if not item.future.done():
                rows = msg.embeddings[offset : offset + n]
                item.future.set_result(
                    ChunkResult(
                        np.asarray(rows),
                        msg.token_counts[offset : offset + n],
                        msg.input_tokens[offset : offset + n],
                    )
                )
            offset += n

    def _on_error(self, worker: WorkerState, msg: Error) -> None:
        job = self._take_job(worker, msg.job_id)
        if job is None:
            return
        error: ApiError
        if msg.code == ErrorCode.DEADLINE_EXCEEDED:
            error = Timeout(
                "the request's deadline (server.request_timeout_s, or the caller's own) passed "
                f"before a worker ran it: {msg.message}"
            )
        elif msg.code == ErrorCode.INVALID_JOB:
            error = InvalidInput(msg.message)
        else:
            error = WorkerFailed(f"worker {worker.worker_id} failed the job ({msg.code}): {msg.message}")
        log.warning("job_failed", worker_id=worker.worker_id, job_id=msg.job_id, code=msg.code, message=msg.message)
        self._fail(job.items, error)
        self._pump(job.model)

    # ---- liveness

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self._tick()
            except Exception:  # the heartbeat must survive anything one tick meets
                log.exception("tick_failed")

    def _tick(self) -> None:
        """Expire silent workers, heartbeat the rest, sweep abandoned chunks."""
        now = self._loop.time()
        for worker in self.registry.expired(now, self._expiry):
            self.metrics.workers_expired.inc()
            self._drop_worker(worker, "missed heartbeats")
        for worker in list(self.registry.workers.values()):
            if not self._send(worker.identity, Heartbeat()):
                self._drop_worker(worker, "unreachable")
        self.metrics.abandoned.inc(self.batcher.purge_all())
        self._pump_all()
        self._drain()

    def _drop_worker(self, worker: WorkerState, reason: str) -> None:
        """Forget a worker and put its in-flight jobs back on the queue for another."""
        if self.registry.remove(worker.identity) is None:
            return
        for job_id in sorted(worker.inflight):
            self._requeue(job_id)
        self._count_workers()
        log.warning("worker_lost", worker_id=worker.worker_id, reason=reason, requeued=len(worker.inflight))

    def _requeue(self, job_id: int) -> None:
        job = self.jobs.pop(job_id, None)
        if job is not None:
            self.metrics.jobs_requeued.inc()
            self.batcher.requeue(job.items)
            log.info("job_requeued", job_id=job_id, texts=job.size)

    def _count_workers(self) -> None:
        for name in self.registry.known:
            self.metrics.workers.labels(name).set(self.registry.count(name))

    @staticmethod
    def _fail(items: list[Pending], error: Exception) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)
