"""The dispatch state machine: workers, queue, jobs and their policy, with no sockets and no clock.

Events in (a worker's frames, a submitted chunk, a heartbeat tick, a timer), actions out (send
this message to that identity, deliver these rows, fail these callers, wake me at t). The time
is an argument, never read here, so the policy's tests are tables with a fake clock.
`gateway.transport` is the socket around it; it runs every call on the event loop thread, so
the dispatcher is the single owner of the registry, the queue and the job table.

Dispatch is continuous batching: a worker with no job gets the queue's head at once (a lone
request never waits for the window); while every worker is busy, chunks coalesce until
`max_batch_size` texts or until the oldest has waited `batch_timeout_ms`, and then go to the
least-loaded worker with a free slot (a worker holds up to `capacity` jobs, so it always has
the next batch in hand).

A worker that dies holding a job (expiry, unreachable, DISCONNECT) gets its jobs requeued at
the front. A chunk that was in a dead worker's hands is a suspect: it next rides alone, on an
idle worker that takes nothing else meanwhile, so if that worker dies too the chunk is the
likely cause and fails with `worker_failed` instead of taking a third worker down.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from gateway.dispatch.batcher import Batcher, ChunkResult, Pending
from gateway.dispatch.failures import Failure, Reason
from gateway.dispatch.workers import WorkerRegistry, WorkerState
from gateway.metrics import Metrics
from shared.codec import ProtocolError, decode
from shared.config import Config
from shared.protocol import REFUSED, Disconnect, Error, ErrorCode, Heartbeat, Job, Message, Ready, Result

log = structlog.get_logger("gateway.dispatch.dispatcher")

# A chunk is failed after this many workers died holding it.
MAX_DEATHS = 2
# Job ids taken from a worker without an answer, remembered so that its late reply is known as
# stale (dropped) rather than a protocol violation. Bounded: only lost jobs land here.
ORPHANS_KEPT = 4096


@dataclass(frozen=True)
class Send:
    """Send `msg` to the worker with this routing identity."""

    identity: bytes
    msg: Message


@dataclass(frozen=True)
class Deliver:
    """Resolve one chunk's caller with its rows."""

    item: Pending
    result: ChunkResult


@dataclass(frozen=True)
class Fail:
    """Fail these chunks' callers with `failure` (mapped to a client's error where callers are settled)."""

    items: tuple[Pending, ...]
    failure: Failure


@dataclass(frozen=True)
class Wake:
    """Call `wake(now)` at `at` (a batching window closes then)."""

    at: float


Action = Send | Deliver | Fail | Wake


@dataclass(eq=False)
class InFlight:
    job_id: int
    identity: bytes
    model: str
    items: list[Pending]
    size: int


class Dispatcher:
    """Worker registry + queue + job table + the policy over them. Every entry point returns actions."""

    def __init__(self, cfg: Config, metrics: Metrics, first_job_id: int) -> None:
        self.metrics = metrics
        self.registry = WorkerRegistry()
        self.batcher = Batcher(cfg.batching.max_batch_size, cfg.batching.max_queue_texts)
        self.jobs: dict[int, InFlight] = {}
        self.window = cfg.batching.batch_timeout_ms / 1000
        self.expiry = cfg.heartbeat.interval_ms / 1000 * cfg.heartbeat.liveness
        # Ids run up from a start the caller draws at random: a worker may still hold a job from a
        # previous gateway (a restart) and deliver it here, and it must not match a new job.
        self._first_job_id = first_job_id
        self._next_job_id = first_job_id
        self._orphans: OrderedDict[int, bytes] = OrderedDict()
        # Identities turned away at READY: a worker too old to stop on the refusal would answer
        # the DISCONNECT with READY again, so further READYs from them are dropped unanswered.
        self._refused: OrderedDict[bytes, None] = OrderedDict()
        self._out: list[Action] = []

    # ---- entry points

    def submit(self, item: Pending, now: float) -> list[Action]:
        """Queue a chunk (and dispatch at once if a worker is free); a full queue fails it with QUEUE_FULL."""
        if not self.batcher.has_room(len(item.texts)):
            self.metrics.abandoned.inc(self.batcher.purge_all())
            if not self.batcher.has_room(len(item.texts)):
                self.metrics.queue_depth.set(self.batcher.queued_texts)
                message = (
                    f"the embedding queue is full ({self.batcher.queued_texts} texts waiting, "
                    f"batching.max_queue_texts={self.batcher.max_queue_texts}); retry shortly or add workers"
                )
                self._fail([item], Failure(Reason.QUEUE_FULL, message))
                return self._flush()
        self.batcher.add(item)
        self._pump(item.model, now)
        return self._flush()

    def on_frames(self, identity: bytes, frames: Sequence[Any], now: float) -> list[Action]:
        """Frames from a worker (without the ROUTER's identity frame)."""
        try:
            msg = decode(frames)
        except ProtocolError as exc:
            self.metrics.frames_dropped.inc()
            worker = self.registry.get(identity)
            if worker is None:
                log.warning("frame_dropped", worker=_name(identity), reason=str(exc))
            else:
                self._violation(worker, str(exc), now)
            return self._flush()
        return self.on_message(identity, msg, now)

    def on_message(self, identity: bytes, msg: Message, now: float) -> list[Action]:
        """One decoded message from a worker."""
        if isinstance(msg, Ready):
            self._on_ready(identity, msg, now)
            return self._flush()
        worker = self.registry.get(identity)
        if worker is None:
            if not isinstance(msg, Disconnect):
                # Unknown to us (we restarted, expired it, or dropped it): ask it to register again.
                self._out.append(Send(identity, Disconnect(reason="unknown worker; send READY")))
            return self._flush()
        worker.last_seen = now
        if isinstance(msg, Result):
            self._on_result(worker, msg, now)
        elif isinstance(msg, Error):
            self._on_error(worker, msg, now)
        elif isinstance(msg, Disconnect):
            self._drop_worker(worker, "disconnected", died=True)
            self._pump_all(now)
        elif isinstance(msg, Job):
            self._violation(worker, "workers do not send JOB", now)
        return self._flush()

    def on_send_failed(self, identity: bytes, msg: Message, now: float) -> list[Action]:
        """The transport could not send `msg` (the peer is gone): drop that worker."""
        worker = self.registry.get(identity)
        if worker is not None:
            # The job whose send failed never reached the worker: it is no suspect.
            spared = msg.job_id if isinstance(msg, Job) else None
            self._drop_worker(worker, "unreachable", died=True, spared=spared)
            self._pump_all(now)
        return self._flush()

    def revoke(self, identity: bytes, now: float) -> list[Action]:
        """The worker's key was removed from the accepted folder: forget it (its jobs go to others)."""
        worker = self.registry.get(identity)
        if worker is not None:
            log.warning("worker_key_revoked", worker_id=worker.worker_id, host=worker.ready.host, pid=worker.ready.pid)
            self._drop_worker(worker, "key revoked", died=False)
            self._pump_all(now)
        return self._flush()

    def tick(self, now: float) -> list[Action]:
        """Each heartbeat interval: expire silent workers, heartbeat the rest, sweep abandoned chunks."""
        for worker in self.registry.expired(now, self.expiry):
            self.metrics.workers_expired.inc()
            self._drop_worker(worker, "missed heartbeats", died=True)
        self._out.extend(Send(identity, Heartbeat()) for identity in self.registry.workers)
        self.metrics.abandoned.inc(self.batcher.purge_all())
        self._pump_all(now)
        return self._flush()

    def wake(self, now: float) -> list[Action]:
        """A batching window closed: dispatch what waited for it."""
        self._pump_all(now)
        return self._flush()

    def close(self) -> list[Action]:
        """Fail every waiting caller and tell every worker the gateway is leaving."""
        gone = Failure(Reason.SHUTTING_DOWN, "the gateway is shutting down")
        for job in self.jobs.values():
            self._fail(job.items, gone)
        self.jobs.clear()
        for model in self.batcher.models():
            self._fail(self.batcher.take_all(model), gone)
        for identity in list(self.registry.workers):
            self.registry.remove(identity)
            self._out.append(Send(identity, Disconnect(reason="gateway shutting down")))
        return self._flush()

    # ---- dispatch

    def _pump(self, model: str, now: float) -> None:
        """Send jobs while there is queued work and a worker slot; else ask to be woken at the window's end."""
        while True:
            self.metrics.abandoned.inc(self.batcher.purge(model))
            head = self.batcher.head(model)
            if head is None:
                break
            worker = self.registry.pick(model, idle_only=head.suspect)
            if worker is None:
                break  # a RESULT, READY or expiry pumps again
            if worker.inflight and now < head.enqueued + self.window and not self.batcher.batch_full(model):
                self._out.append(Wake(head.enqueued + self.window))
                break
            self._dispatch(worker, model, self.batcher.take(model), now)
        self.metrics.queue_depth.set(self.batcher.queued_texts)

    def _pump_all(self, now: float) -> None:
        for model in self.batcher.models():
            self._pump(model, now)

    def _dispatch(self, worker: WorkerState, model: str, items: list[Pending], now: float) -> None:
        job_id = self._next_job_id
        self._next_job_id += 1
        texts = tuple(t for item in items for t in item.texts)
        deadline_ms = int((max(i.deadline for i in items) - now) * 1000)
        head = items[0]  # every chunk of a job shares its options (Pending.options)
        job = Job(job_id, model, texts, head.pooling, head.normalize, deadline_ms, head.prompt, *pairs_of(items))
        worker.inflight.add(job_id)
        worker.solo = items[0].suspect
        self.jobs[job_id] = InFlight(job_id, worker.identity, model, items, len(texts))
        self.metrics.batch_size.labels(model).observe(len(texts))
        self._out.append(Send(worker.identity, job))

    # ---- replies

    def _take_job(self, worker: WorkerState, job_id: int, now: float) -> InFlight | None:
        """The job this reply answers, or None for a stale reply (dropped) or a violation (peer dropped)."""
        job = self.jobs.get(job_id)
        if job is not None and job.identity == worker.identity:
            del self.jobs[job_id]
            worker.inflight.discard(job_id)
            worker.solo = False
            return job
        issued_here = self._first_job_id <= job_id < self._next_job_id
        if self._orphans.get(job_id) == worker.identity or not issued_here:
            # Requeued when this worker was lost (and maybe answered by another since), or a job
            # of a previous gateway this worker still held when it reconnected here.
            self._orphans.pop(job_id, None)
            log.info("stale_reply_dropped", worker_id=worker.worker_id, job_id=job_id)
            return None
        self._violation(worker, f"reply for job {job_id}, which this gateway did not give it", now)
        return None

    def _on_result(self, worker: WorkerState, msg: Result, now: float) -> None:
        job = self._take_job(worker, msg.job_id, now)
        if job is None:
            return
        self.metrics.worker_compute.labels(job.model).observe(msg.compute_ms / 1000)
        if msg.embeddings.shape[0] != job.size:
            rows = msg.embeddings.shape[0]
            message = f"worker {worker.worker_id} returned {rows} rows for {job.size} texts"
            self._fail(job.items, Failure(Reason.WORKER_FAILED, message))
        else:
            offset = 0
            for item in job.items:
                n = len(item.texts)
                if not item.abandoned:
                    span = slice(offset, offset + n)
                    rows = np.asarray(msg.embeddings[span])
                    self._out.append(Deliver(item, ChunkResult(rows, msg.token_counts[span], msg.input_tokens[span])))
                offset += n
        self._pump(job.model, now)

    def _on_error(self, worker: WorkerState, msg: Error, now: float) -> None:
        job = self._take_job(worker, msg.job_id, now)
        if job is None:
            return
        log.warning("job_failed", worker_id=worker.worker_id, job_id=msg.job_id, code=msg.code, message=msg.message)
        self._fail(job.items, worker_failure(worker.worker_id, msg))
        self._pump(job.model, now)

    # ---- losing workers

    def _drop_worker(self, worker: WorkerState, reason: str, *, died: bool, spared: int | None = None) -> None:
        """Forget a worker and requeue its jobs; if it `died`, each job's chunks become suspects."""
        if self.registry.remove(worker.identity) is None:
            return
        # Newest first: each goes back to the front, so the oldest ends up at the head.
        for job_id in sorted(worker.inflight, reverse=True):
            self._requeue(job_id, worker, reason, died=died and job_id != spared)
        self._count_workers()
        log.warning("worker_lost", worker_id=worker.worker_id, reason=reason, requeued=len(worker.inflight))

    def _requeue(self, job_id: int, worker: WorkerState, reason: str, *, died: bool) -> None:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return
        self._orphans[job_id] = job.identity
        while len(self._orphans) > ORPHANS_KEPT:
            self._orphans.popitem(last=False)
        items = [i for i in job.items if not i.abandoned]
        if died:
            for item in items:
                item.deaths += 1
            poisoned = tuple(i for i in items if i.deaths >= MAX_DEATHS)
            if poisoned:
                self.metrics.poison_jobs.inc()
                log.error("job_poisoned", job_id=job_id, worker_id=worker.worker_id, reason=reason, texts=job.size)
                self._fail(
                    list(poisoned),
                    Failure(
                        Reason.POISONED,
                        f"{MAX_DEATHS} workers in a row were lost while holding this input (last: "
                        f"{worker.worker_id}, {reason}); it likely crashes the model, so it is not sent again",
                    ),
                )
                items = [i for i in items if i.deaths < MAX_DEATHS]
        if items:
            self.metrics.jobs_requeued.inc()
            self.batcher.requeue(items)
            log.info("job_requeued", job_id=job_id, texts=sum(len(i.texts) for i in items))

    def _violation(self, worker: WorkerState, reason: str, now: float) -> None:
        """Majordomo's rule: a peer that breaks the protocol is told DISCONNECT and forgotten."""
        self.metrics.protocol_violations.inc()
        log.warning(
            "protocol_violation",
            worker_id=worker.worker_id,
            host=worker.ready.host,
            pid=worker.ready.pid,
            reason=reason,
        )
        self._drop_worker(worker, f"protocol violation: {reason}", died=False)
        self._out.append(Send(worker.identity, Disconnect(reason=f"protocol violation: {reason}")))
        self._pump_all(now)

    # ---- registration

    def _on_ready(self, identity: bytes, ready: Ready, now: float) -> None:
        if identity in self._refused:
            return
        if ready.capacity < 1 or not ready.models:
            worker = self.registry.get(identity)
            if worker is not None:
                self._violation(worker, "READY without models or capacity", now)
            else:
                log.warning("frame_dropped", worker=ready.worker_id, reason="READY without models or capacity")
            return
        clash = self._dimension_clash(ready)
        if clash:
            self._refuse(identity, ready, clash, now)
            return
        for other in self.registry.namesakes(identity, ready.worker_id):
            # Two processes, one name (two hosts with one host name under supervisord): both serve,
            # as their routing identities differ; the operator should still rename one.
            log.warning(
                "worker_id_clash",
                worker_id=ready.worker_id,
                host=ready.host,
                pid=ready.pid,
                other_host=other.ready.host,
                other_pid=other.ready.pid,
                hint="both serve; give each worker its own --worker-id",
            )
        previous = self.registry.get(identity)
        held = self.registry.register(identity, ready, now)
        if previous is not None:
            # The same process registering again (it reconnected): what it held is lost, not its fault.
            for job_id in sorted(held, reverse=True):
                self._requeue(job_id, previous, "registered again", died=False)
        self._count_workers()
        log.info(
            "worker_ready",
            worker_id=ready.worker_id,
            models=[m.name for m in ready.models],
            device=ready.device,
            backend=ready.models[0].backend,
            capacity=ready.capacity,
            host=ready.host,
            pid=ready.pid,
        )
        self._pump_all(now)

    def _dimension_clash(self, ready: Ready) -> str:
        """Why this READY cannot be taken: a known model name announced with another dimension ('' if none)."""
        for info in ready.models:
            known = self.registry.known.get(info.name)
            if known is not None and known.dimension != info.dimension:
                return (
                    f"model {info.name!r} is served here with dimension {known.dimension}, "
                    f"this worker announced {info.dimension}; mixing them would corrupt collections"
                )
        return ""

    def _refuse(self, identity: bytes, ready: Ready, reason: str, now: float) -> None:
        """Turn a READY away with DISCONNECT naming why; a registered sender is forgotten too."""
        log.error("worker_refused_model", worker_id=ready.worker_id, host=ready.host, pid=ready.pid, reason=reason)
        self.metrics.workers_refused.inc()
        self._refused[identity] = None
        while len(self._refused) > ORPHANS_KEPT:
            self._refused.popitem(last=False)
        worker = self.registry.get(identity)
        if worker is not None:
            self._drop_worker(worker, f"{REFUSED}{reason}", died=False)
            self._pump_all(now)
        self._out.append(Send(identity, Disconnect(reason=f"{REFUSED}{reason}")))

    # ---- helpers

    def _count_workers(self) -> None:
        for name in self.registry.known:
            self.metrics.workers.labels(name).set(self.registry.count(name))

    def _fail(self, items: list[Pending], failure: Failure) -> None:
        live = tuple(i for i in items if not i.abandoned)
        if live:
            self._out.append(Fail(live, failure))

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out


def worker_failure(worker_id: str, msg: Error) -> Failure:
    """What a worker's ERROR means for its callers: the one place worker codes meet failure reasons."""
    if msg.code == ErrorCode.DEADLINE_EXCEEDED:
        return Failure(
            Reason.DEADLINE,
            "the request's deadline (server.request_timeout_s, or the caller's own) passed "
            f"before a worker ran it: {msg.message}",
        )
    if msg.code == ErrorCode.INVALID_JOB:
        return Failure(Reason.INVALID_JOB, msg.message)
    return Failure(Reason.WORKER_FAILED, f"worker {worker_id} failed the job ({msg.code}): {msg.message}")


def pairs_of(items: list[Pending]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """A rerank job's `queries` (each once, in order of first use) and each text's index into them; ((), ())
    for embedding chunks."""
    if items[0].query is None:
        return (), ()
    index: dict[str, int] = {}
    query_of: list[int] = []
    for item in items:
        assert item.query is not None  # a model's queue holds one kind of chunk
        q = index.setdefault(item.query, len(index))
        query_of.extend([q] * len(item.texts))
    return tuple(index), tuple(query_of)


def _name(identity: bytes) -> str:
    return identity.decode(errors="replace")
