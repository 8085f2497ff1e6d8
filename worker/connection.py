"""The worker's IO thread: one DEALER socket to the gateway, heartbeats, reconnects.

Socket IO lives on its own thread so a long forward pass never starves the connection:
heartbeats keep flowing while the compute loop is busy. Jobs go to the compute loop through
a queue; results come back through an inproc PULL socket (ZeroMQ sockets are single-thread).

With CURVE keys (the default) the DEALER is a CURVE client: the gateway's handshake admits it
only if its public key is in the gateway's accepted folder. A refused handshake is logged with
what to do and ends the session (libzmq does not retry it, and a DEALER without a peer would
block on its next send); the worker reconnects with backoff, like after any other loss.
"""

from __future__ import annotations

import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass

import structlog
import zmq
from zmq.utils.monitor import recv_monitor_message

from shared.codec import ProtocolError, decode, encode
from shared.curve import WorkerKeys
from shared.protocol import REFUSED, Disconnect, Heartbeat, Job, Ready

log = structlog.get_logger("worker.connection")

RESULTS_ENDPOINT = "inproc://akidb-results"
MAX_BACKOFF_S = 32.0
HANDSHAKE_FAILURES = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the gateway does not accept this worker's key",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the gateway speaks another security mechanism (CURVE on one side only?)",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the handshake failed (wrong zmq.server_public_key?)",
}


def routing_identity(worker_id: str) -> bytes:
    """This process's ZeroMQ routing identity: the human worker id plus the pid and a random tag.

    Unique per process, so two workers started under one `--worker-id` (two hosts with one host
    name) are two peers to the gateway instead of stealing one identity from each other; stable
    across this process's reconnects, so ROUTER_HANDOVER still gives a reconnecting worker its
    place back.
    """
    return f"{worker_id}/{os.getpid()}/{secrets.token_hex(4)}".encode()


@dataclass(frozen=True)
class HeartbeatTiming:
    interval_s: float
    liveness: int


class Connection(threading.Thread):
    """Keeps one live session with the gateway and ferries jobs and results."""

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        ready: Ready,
        timing: HeartbeatTiming,
        jobs: queue.Queue[Job],
        curve: WorkerKeys | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        super().__init__(name="akidb-io", daemon=True)
        self.ctx = ctx
        self.endpoint = endpoint
        self.ready = ready
        self.timing = timing
        self.jobs = jobs
        self.curve = curve
        self.refused = ""  # the gateway's reason, when it turned this worker away for good
        self.stopping = stopping or threading.Event()
        self.results = ctx.socket(zmq.PULL)
        self.results.bind(RESULTS_ENDPOINT)
        self.sessions = 0  # READYs sent: 1 + reconnects
        self.failed = False
        self.identity = routing_identity(ready.worker_id)
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("io_thread_failed")
            self.failed = True
            self.stopping.set()

    def _run(self) -> None:
        backoff = self.timing.interval_s
        while not self.stopping.is_set():
            self._open()
            lost, heard_any = self._session()
            if not lost:
                break
            if heard_any:
                backoff = self.timing.interval_s  # the last session worked: start the backoff afresh
            log.warning("gateway_lost", endpoint=self.endpoint, retry_in_s=round(backoff, 2))
            if self.stopping.wait(backoff):
                break
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self._close(say_goodbye=True)

    def _open(self) -> None:
        self._close(say_goodbye=False)
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, self.identity)
        sock.setsockopt(zmq.LINGER, 1000)
        if self.curve is not None:
            sock.curve_secretkey = self.curve.pair.secret
            sock.curve_publickey = self.curve.pair.public
            sock.curve_serverkey = self.curve.server_public
            self._monitor = sock.get_monitor_socket(sum(HANDSHAKE_FAILURES))
        sock.connect(self.endpoint)
        self._sock = sock
        self._send(self.ready)
        self.sessions += 1
        log.info("worker_ready_sent", endpoint=self.endpoint, worker_id=self.ready.worker_id, session=self.sessions)

    def _close(self, say_goodbye: bool) -> None:
        if self._sock is None:
            return
        if say_goodbye:
            # Results finished before the stop (a fatal error's own ERROR among them) go first, so
            # the callers hear from this worker before its DISCONNECT requeues what it held.
            self._forward_results()
            self._send(Disconnect(reason="worker shutting down"))
        if self._monitor is not None:
            self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        self._sock.close()
        self._sock = None

    def _send(self, msg: object) -> None:
        assert self._sock is not None
        self._sock.send_multipart(encode(msg), copy=False)  # type: ignore[arg-type]

    def _session(self) -> tuple[bool, bool]:
        """Serve until the gateway goes silent or we are stopped: (lost, heard anything)."""
        assert self._sock is not None
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self.results, zmq.POLLIN)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        interval = self.timing.interval_s
        liveness = self.timing.liveness
        heard = False  # anything from the gateway since our last heartbeat
        heard_any = False
        next_beat = time.monotonic() + interval
        while not self.stopping.is_set():
            timeout_ms = max(0.0, min(next_beat - time.monotonic(), 0.1)) * 1000
            events = dict(poller.poll(timeout_ms))
            if self.results in events:
                self._forward_results()  # every finished result before anything else
            if self._monitor is not None and self._monitor in events and self._handshake_failed():
                return True, heard_any
            if self._sock in events:
                liveness, heard, heard_any = self.timing.liveness, True, True
                self._receive()
            if time.monotonic() >= next_beat:
                self._send(Heartbeat())
                next_beat = time.monotonic() + interval
                if not heard:
                    liveness -= 1
                    if liveness <= 0:
                        return True, heard_any
                heard = False
        return False, heard_any

    def _handshake_failed(self) -> bool:
        """Read the monitor: True (and a log line saying what to do) if the gateway refused the handshake."""
        assert self._monitor is not None
        failed = False
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            failed = True
            log.error(
                "gateway_refused_handshake",
                endpoint=self.endpoint,
                reason=HANDSHAKE_FAILURES.get(event, str(event)),
                hint="copy this worker's public key (zmq.worker_key, .key file) into the gateway's zmq.workers_dir, "
                "and set zmq.server_public_key to the gateway's public key",
            )
        return failed

    def _forward_results(self) -> None:
        assert self._sock is not None
        while True:
            try:
                self._sock.send_multipart(self.results.recv_multipart(zmq.NOBLOCK, copy=False), copy=False)
            except zmq.Again:
                return

    def _receive(self) -> None:
        assert self._sock is not None
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode(frames)
            except ProtocolError as exc:
                log.warning("frame_dropped", reason=str(exc))
                continue
            if isinstance(msg, Job):
                self.jobs.put(msg)
            elif isinstance(msg, Disconnect) and msg.reason.startswith(REFUSED):
                log.error("gateway_refused_worker", reason=msg.reason.removeprefix(REFUSED))
                self.refused = msg.reason
                self.stopping.set()
                return
            elif isinstance(msg, Disconnect):
                # The gateway does not know us (it restarted, or expired us): register again.
                log.info("gateway_asked_ready", reason=msg.reason)
                self._send(self.ready)
                self.sessions += 1
            elif not isinstance(msg, Heartbeat):
                log.warning("frame_dropped", reason=f"unexpected {type(msg).__name__} from gateway")
