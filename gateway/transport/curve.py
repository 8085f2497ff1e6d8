"""Who may be a worker: CURVE on the ROUTER socket, pyzmq's own ZAP authenticator, refusals logged.

The transport's partner for security (with it, the only gateway modules that import zmq). The
ROUTER is a CURVE server; pyzmq's `AsyncioAuthenticator` answers the ZAP requests on the
gateway's event loop, accepting the public keys in `zmq.workers_dir`. A worker whose key is not
there is refused by the handshake, and so is a peer without CURVE: neither's frames ever reach
the dispatcher. Both kinds of refusal are logged with the peer's address and counted in
`akidb_worker_auth_refused_total`.

The folder is read again when its listing changes, checked on every heartbeat tick, so adding
or removing a key takes effect within one `heartbeat.interval_ms` and no restart.
"""

from __future__ import annotations

import os
import socket
import typing
from collections.abc import Callable
from pathlib import Path

import structlog
import zmq
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.utils.monitor import recv_monitor_message

log = structlog.get_logger("gateway.worker_auth")

DOMAIN = "*"
# (reason label, peer address) → the caller logs and counts it.
OnRefused = Callable[[str, str], None]
# A refusal reason (label value) per handshake failure the socket monitor reports: a peer without
# CURVE, with the wrong gateway key, or speaking garbage (libzmq reports a mechanism mismatch as
# either event, depending on timing).
_MONITOR_REASONS: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed",
}
_MONITOR_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
_MONITOR_EVENTS |= zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL


def _listing(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """The folder's `*.key` files with their mtime and size: changes when a key is added, removed or edited."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return ()
    return tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in entries if e.name.endswith(".key")))


class WorkerAuthenticator(AsyncioAuthenticator):
    """pyzmq's authenticator with two small hooks: refusals are reported, and the key folder reloads.

    The ZAP decision itself is pyzmq's (`configure_curve`): nothing here judges a key.
    """

    def __init__(self, ctx: zmq.Context, workers_dir: Path, on_refused: OnRefused) -> None:
        super().__init__(ctx)
        self.workers_dir = workers_dir
        self.on_refused = on_refused
        self._listing: tuple[tuple[str, int, int], ...] | None = None
        self._peer = ""

    def reload_if_changed(self) -> bool:
        """Read the accepted keys again if the folder changed since the last read; True if it did."""
        listing = _listing(self.workers_dir)
        if listing == self._listing:
            return False
        self._listing = listing
        if self.workers_dir.is_dir():
            self.configure_curve(domain=DOMAIN, location=str(self.workers_dir))
        else:
            self.certs[DOMAIN] = {}  # fail closed: no folder, no worker (pyzmq would keep the old keys)
        log.info("worker_keys_loaded", folder=str(self.workers_dir), keys=len(self.certs.get(DOMAIN, {})))
        return True

    def accepted_keys(self) -> frozenset[str]:
        """The z85 public keys accepted now (a worker's ZAP user id is its key)."""
        return frozenset(k.decode() for k in self.certs.get(DOMAIN, {}))

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        # Remember who asks: pyzmq's reply hook below does not get the address. Requests are
        # handled one at a time, so one slot is enough.
        self._peer = msg[3].decode(errors="replace") if len(msg) > 3 else "unknown"
        await super().handle_zap_message(msg)

    def _send_zap_reply(
        self, request_id: bytes, status_code: bytes, status_text: bytes, user_id: str = "anonymous"
    ) -> None:
        if status_code != b"200":
            self.on_refused("unknown_key", self._peer)
        super()._send_zap_reply(request_id, status_code, status_text, user_id)


class HandshakeMonitor:
    """Reports peers that failed the handshake before ZAP was asked: no CURVE, or garbage.

    libzmq's monitor names the bound endpoint, not the peer; the peer's address is read from the
    connection's socket when it is accepted and matched at its DISCONNECTED event, which follows
    the failure directly. A connection that closed before its ACCEPTED event was read has no
    address to give ("unknown"), but is still counted.
    """

    def __init__(self, router: zmq.Socket, on_refused: OnRefused) -> None:
        self.sock = router.get_monitor_socket(_MONITOR_EVENTS)
        self.on_refused = on_refused
        self._port = _port_of(router.getsockopt_string(zmq.LAST_ENDPOINT))
        self._peers: dict[int, str] = {}
        self._failed: str | None = None

    @property
    def fd(self) -> int:
        return typing.cast(int, self.sock.getsockopt(zmq.FD))

    def drain(self) -> None:
        """Handle every event waiting on the monitor socket (its fd is edge-triggered)."""
        while typing.cast(int, self.sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            msg = recv_monitor_message(self.sock, zmq.NOBLOCK)
            event, value = typing.cast(int, msg["event"]), typing.cast(int, msg["value"])
            if event == zmq.EVENT_ACCEPTED:
                self._peers[value] = self._peer_of(value)
            elif event == zmq.EVENT_DISCONNECTED:
                peer = self._peers.pop(value, "unknown")
                if self._failed is not None:
                    self.on_refused(self._failed, peer)
                    self._failed = None
            elif event in _MONITOR_REASONS:
                if self._failed is not None:  # two failures in a row: report the first now
                    self.on_refused(self._failed, "unknown")
                self._failed = _MONITOR_REASONS[event]

    def close(self) -> None:
        self.sock.close(linger=0)

    def _peer_of(self, fd: int) -> str:
        try:
            with socket.socket(fileno=os.dup(fd)) as conn:
                if conn.getsockname()[1] != self._port:  # the fd was already reused by another socket
                    return "unknown"
                host, port = conn.getpeername()[:2]
                return f"{host}:{port}"
        except OSError:
            return "unknown"


def _port_of(endpoint: str) -> int:
    try:
        return int(endpoint.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return -1
