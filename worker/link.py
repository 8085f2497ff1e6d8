"""One gateway's link from the worker: its DEALER socket, the monitor that reports a refused CURVE
handshake, and the routing identity every link of this process shares.

Sends never block: a DEALER whose gateway is dead or stalled would otherwise hold the IO thread,
and with it every other gateway's heartbeats and results. A send that would block is dropped
and logged; that gateway's liveness countdown then decides. The poll loop that drives every
link is `worker.connection`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from typing import Any

import structlog
import zmq
from zmq.utils.monitor import recv_monitor_message

from shared.curve import WorkerKeys

log = structlog.get_logger("worker.link")

HANDSHAKE_FAILURES: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the gateway does not accept this worker's key",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the gateway speaks another security mechanism (CURVE on one side only?)",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the handshake failed (wrong zmq.server_public_key?)",
}


def routing_identity(worker_id: str) -> bytes:
    """This process's ZeroMQ routing identity: the human worker id plus the pid and a random tag.

    Unique per process, so two workers started under one `--worker-id` (two hosts with one host
    name) are two peers to the gateway instead of stealing one identity from each other; stable
    across this process's reconnects, so ROUTER_HANDOVER still gives a reconnecting worker its
    place back. One identity for every gateway the process serves.
    """
    return f"{worker_id}/{os.getpid()}/{secrets.token_hex(4)}".encode()


class Link:
    """One gateway's DEALER socket and, with CURVE, the monitor that reports a refused handshake."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.sock: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None

    def open(self, ctx: zmq.Context, identity: bytes, curve: WorkerKeys | None) -> None:
        self.close()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, identity)
        if curve is not None:
            sock.curve_secretkey = curve.pair.secret
            sock.curve_publickey = curve.pair.public
            sock.curve_serverkey = curve.server_public
            self.monitor = sock.get_monitor_socket(sum(HANDSHAKE_FAILURES))
        sock.connect(self.endpoint)
        self.sock = sock

    def close(self, linger_ms: int = 0) -> None:
        """Close the socket; only a goodbye lingers (`linger_ms`) to get its last frames out.

        A lost link's socket must not linger: libzmq would keep it dialling the gateway to deliver
        stale READYs and heartbeats under this process's identity, and when the gateway comes back
        that ghost can take the identity's route (ROUTER_HANDOVER) from the fresh socket.
        """
        if self.sock is None:
            return
        if self.monitor is not None:
            self.sock.disable_monitor()
            self.monitor.close(linger=0)
            self.monitor = None
        self.sock.close(linger=linger_ms)
        self.sock = None

    def send(self, frames: Sequence[Any]) -> None:
        if self.sock is None:
            return
        try:
            self.sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:  # the gateway is gone or not reading: its liveness countdown will tell
            log.warning("send_dropped", endpoint=self.endpoint)

    def handshake_failed(self) -> bool:
        """Read the monitor: True (and a log line saying what to do) if the gateway refused the handshake."""
        assert self.monitor is not None
        failed = False
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)["event"]
            failed = True
            log.error(
                "gateway_refused_handshake",
                endpoint=self.endpoint,
                reason=HANDSHAKE_FAILURES.get(event, str(event)),
                hint="copy this worker's public key (zmq.worker_key, .key file) into the gateway's zmq.workers_dir, "
                "and set zmq.server_public_key to the gateway's public key",
            )
        return failed
