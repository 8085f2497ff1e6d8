"""The worker's IO thread: one DEALER socket per gateway, driven by one `Session` each, in one poll loop.

Socket IO lives on its own thread so a long forward pass never starves the links: heartbeats
keep flowing while the compute loop is busy. Every protocol rule lives in `worker.session`;
this module only polls, feeds each session its frames and the clock, and carries out what it
returns. Jobs from every gateway go to the one compute loop through a queue; results come back
through an inproc PULL socket (ZeroMQ sockets are single-thread), tagged with the session they
answer, and go out on that gateway's socket.

Each gateway's socket, its CURVE monitor and its non-blocking send are a `worker.link.Link`.

With CURVE keys (the default) each DEALER is a CURVE client: the gateway's handshake admits it
only if its public key is in the gateway's accepted folder. A refused handshake is logged with
what to do and ends that link (libzmq does not retry it); the session reconnects with backoff.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence

import structlog
import zmq

from shared.codec import ProtocolError, decode, encode
from shared.curve import WorkerKeys
from shared.protocol import Message, Ready
from worker.jobs import RESULTS_ENDPOINT, Assignment, read_tag, result_tag
from worker.link import Link, routing_identity
from worker.session import (
    Abandon,
    Action,
    Close,
    Deliver,
    Dropped,
    Forward,
    Lost,
    Open,
    Refused,
    Send,
    Session,
    State,
    Timing,
)

log = structlog.get_logger("worker.connection")

# The longest poll: how soon the thread notices `stopping`.
POLL_CAP_S = 0.1
# How long a stopping worker's socket may take to deliver its last results and DISCONNECT.
GOODBYE_LINGER_MS = 1000


class Outbox:
    """The compute loop's end of the results pair: a PUSH socket, made and used on the compute thread."""

    def __init__(self, ctx: zmq.Context) -> None:
        self._out = ctx.socket(zmq.PUSH)
        self._out.connect(RESULTS_ENDPOINT)

    def send(self, item: Assignment, msg: Message) -> None:
        """`msg` answers `item`: tagged with its session and job, so it goes back to the gateway that sent it."""
        frames = [result_tag(item.session, item.job.job_id), *encode(msg)]
        self._out.send_multipart(frames, copy=False)

    def close(self) -> None:
        self._out.close(linger=1000)


class Connection(threading.Thread):
    """Keeps one `Session` per gateway endpoint and ferries jobs and results between them and the compute loop."""

    def __init__(
        self,
        endpoints: Sequence[str],
        ready: Ready,
        timing: Timing,
        jobs: queue.Queue[Assignment],
        curve: WorkerKeys | None = None,
        stopping: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="akidb-io", daemon=True)
        self.ctx = zmq.Context()
        self.ready = ready
        self.jobs = jobs
        self.curve = curve
        self.clock = clock
        self.stopping = stopping or threading.Event()
        self.sessions = [Session(ready, timing) for _ in endpoints]
        self.links = [Link(e) for e in endpoints]
        self.results = self.ctx.socket(zmq.PULL)
        self.results.bind(RESULTS_ENDPOINT)
        self.failed = False
        self.say_goodbye = True  # False: vanish at stop, as a crashed process would (tests)
        self.identity = routing_identity(ready.worker_id)
        # Jobs handed to the compute loop and not answered, by (session, job_id): two gateways
        # may use one job_id, and each answer must go back to the gateway that sent the job.
        self._queued: dict[tuple[int, int], Assignment] = {}

    @property
    def refused(self) -> str:
        """The gateways' reasons, once every one of them has turned this worker away for good."""
        if all(s.state is State.REFUSED for s in self.sessions):
            return "; ".join(s.refused_reason for s in self.sessions)
        return ""

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("io_thread_failed")
            self.failed = True
            self.stopping.set()
        finally:
            for link in self.links:
                link.close()

    def outbox(self) -> Outbox:
        """A results sender for the calling (compute) thread."""
        return Outbox(self.ctx)

    def close(self) -> None:
        """Release the sockets, once the compute loop has stopped sending (a PUSH with no peer would block)."""
        self.results.close(linger=0)
        # A stuck IO thread must not turn shutdown into a hang: then drop its sockets too.
        self.ctx.term() if not self.is_alive() else self.ctx.destroy(linger=0)

    def _run(self) -> None:
        now = self.clock()
        for i, session in enumerate(self.sessions):
            self._apply(i, session.connect(now))
        while not self.stopping.is_set():
            if self.refused:
                self.stopping.set()  # no gateway will have us: stop, exit 2
                break
            self._poll_once()
        if not self.say_goodbye:
            return  # vanish, as a killed process would: the links close in `run`
        # Results finished before the stop (a fatal error's own ERROR among them) go first, so
        # the callers hear from this worker before its DISCONNECT requeues what it held.
        self._forward_results()
        now = self.clock()
        for i, session in enumerate(self.sessions):
            self._apply(i, session.stop(now))

    def _poll_once(self) -> None:
        poller = zmq.Poller()
        poller.register(self.results, zmq.POLLIN)
        for link in self.links:
            if link.sock is not None:
                poller.register(link.sock, zmq.POLLIN)
            if link.monitor is not None:
                poller.register(link.monitor, zmq.POLLIN)
        now = self.clock()
        due = [d for d in (s.deadline() for s in self.sessions) if d is not None]
        wait = min([POLL_CAP_S, *(d - now for d in due)])
        events = dict(poller.poll(round(max(0.0, wait) * 1000)))
        if self.results in events:
            self._forward_results()  # every finished result before anything else
        for i, link in enumerate(self.links):
            if link.monitor is not None and link.monitor in events and link.handshake_failed():
                self._apply(i, self.sessions[i].handshake_failed(self.clock()))
            if link.sock is not None and link.sock in events:
                self._receive(i)
        now = self.clock()
        for i, session in enumerate(self.sessions):
            self._apply(i, session.tick(now))

    def _receive(self, i: int) -> None:
        link, session = self.links[i], self.sessions[i]
        while link.sock is not None:
            try:
                frames = link.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode(frames)
            except ProtocolError as exc:
                log.warning("frame_dropped", endpoint=link.endpoint, reason=str(exc))
                self._apply(i, session.noise(self.clock()))
                continue
            self._apply(i, session.receive(msg, self.clock()))

    def _forward_results(self) -> None:
        if self.stopping.is_set() and not self.say_goodbye:
            return  # vanishing: nothing more leaves this process
        while True:
            try:
                tag, *frames = self.results.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            i, job_id = read_tag(tag.bytes)
            self._queued.pop((i, job_id), None)
            self._apply(i, self.sessions[i].result(job_id, frames))

    def _apply(self, i: int, actions: list[Action]) -> None:
        """Carry out session `i`'s actions, in order."""
        link = self.links[i]
        for action in actions:
            match action:
                case Open():
                    link.open(self.ctx, self.identity, self.curve)
                case Send(msg=msg):
                    link.send(encode(msg))
                    if isinstance(msg, Ready):
                        log.info(
                            "worker_ready_sent",
                            endpoint=link.endpoint,
                            worker_id=msg.worker_id,
                            session=self.sessions[i].readies,
                        )
                case Forward(frames=frames):
                    link.send(frames)
                case Deliver(job=job):
                    item = Assignment(i, job)
                    self._queued[(i, job.job_id)] = item
                    self.jobs.put(item)
                case Abandon(job_ids=ids):
                    for job_id in ids:
                        if (i, job_id) in self._queued:
                            self._queued.pop((i, job_id)).abandoned = True
                    log.info("jobs_abandoned", endpoint=link.endpoint, job_ids=list(ids))
                case Lost(retry_in_s=wait, why=why):
                    link.close()
                    log.warning("gateway_lost", endpoint=link.endpoint, why=why, retry_in_s=round(wait, 2))
                case Refused(reason=reason):
                    link.close()
                    log.error("gateway_refused_worker", endpoint=link.endpoint, reason=reason)
                case Close():
                    link.close(GOODBYE_LINGER_MS)
                case Dropped(reason=reason):
                    log.warning("frame_dropped", endpoint=link.endpoint, reason=reason)
