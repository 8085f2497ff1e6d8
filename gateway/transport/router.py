"""The gateway's ZeroMQ side: one ROUTER socket on the event loop around the dispatcher.

With `curve.py` beside it, the only gateway code that imports zmq. It reads frames and hands
them to the dispatcher with the loop's time; `ActionRunner` carries out the actions that come
back, sending through this socket. Every call runs on the event loop thread and none awaits, so
dispatcher calls never interleave.

Unless `zmq.allow_insecure` is set, the ROUTER is a CURVE server and `gateway.transport.curve`
decides at the handshake who may connect; a peer whose key is later removed from the
accepted folder is forgotten at the next tick and its frames are dropped from then on, so its
session dies and its reconnect meets the handshake's refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import typing

import structlog
import zmq

from gateway.dispatch.batcher import Pending
from gateway.dispatch.dispatcher import Action, Dispatcher, Send
from gateway.dispatch.fleet import WorkerView
from gateway.metrics import Metrics
from gateway.transport.actions import ActionRunner
from gateway.transport.curve import HandshakeMonitor, WorkerAuthenticator
from shared.codec import encode
from shared.config import Config
from shared.curve import ensure_gateway_keys, key_paths

log = structlog.get_logger("gateway.transport")

# Frames handled per wake-up before yielding to the loop, so a flood of results cannot
# starve HTTP handlers.
DRAIN_BATCH = 256
# How long closing waits for the goodbye DISCONNECTs to leave.
CLOSE_LINGER_MS = 100


def _fd(sock: zmq.Socket) -> int:
    return typing.cast(int, sock.getsockopt(zmq.FD))


def _readable(sock: zmq.Socket) -> bool:
    return bool(typing.cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)


class ZmqTransport:
    """`Transport` over a ROUTER socket + heartbeat ticker; the dispatcher decides everything else."""

    def __init__(self, cfg: Config, metrics: Metrics) -> None:
        self.cfg = cfg
        self.dispatcher = Dispatcher(cfg, metrics, first_job_id=random.getrandbits(48))
        self._workers = WorkerView(self.dispatcher.registry, self.dispatcher.batcher)
        self.endpoint = cfg.zmq.bind
        self._interval = cfg.heartbeat.interval_ms / 1000
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._runner: ActionRunner | None = None
        self.metrics = metrics
        self._auth: WorkerAuthenticator | None = None
        self._monitor: HandshakeMonitor | None = None
        self._accepted: frozenset[str] = frozenset()  # z85 keys of the workers allowed now

    @property
    def workers(self) -> WorkerView:
        return self._workers

    # ---- lifecycle

    async def start(self) -> None:
        """Bind the ROUTER socket and start the heartbeat task."""
        self._loop = asyncio.get_running_loop()
        self._runner = ActionRunner(self.dispatcher, self._loop, self._send)
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.ROUTER)
        # MANDATORY: sending to a vanished worker raises instead of silently dropping the job.
        # HANDOVER: a worker process that reconnects (same routing identity) takes it back.
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.LINGER, 0)
        self._secure(sock)
        sock.bind(self.cfg.zmq.bind)
        self._sock = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if self._auth is not None:
            self._monitor = HandshakeMonitor(sock, self._refused)
            self._loop.add_reader(self._monitor.fd, self._monitor.drain)
            self._monitor.drain()
        self._loop.add_reader(_fd(sock), self._drain)
        self._ticker = asyncio.create_task(self._tick_forever(), name="akidb-transport-tick")
        log.info("transport_listening", endpoint=self.endpoint, curve=self._auth is not None)
        self._drain()

    def _secure(self, sock: zmq.Socket) -> None:
        """Make the socket a CURVE server with pyzmq's authenticator, unless `zmq.allow_insecure`."""
        if self.cfg.zmq.allow_insecure:
            log.warning(
                "curve_off",
                endpoint=self.cfg.zmq.bind,
                hint="zmq.allow_insecure is true: any peer that reaches this port can join as a worker "
                "and read the texts it is sent; set it to false (the default) to require CURVE keys",
            )
            return
        paths = key_paths(self.cfg)
        server = ensure_gateway_keys(paths)
        assert self._ctx is not None
        # The authenticator binds the context's ZAP endpoint; it must exist before the first accept.
        self._auth = WorkerAuthenticator(self._ctx, paths.workers_dir, self._refused)
        self._auth.start()
        self._reload_keys()
        sock.curve_server = True
        sock.curve_secretkey = server.secret
        sock.curve_publickey = server.public

    def _refused(self, reason: str, peer: str) -> None:
        self.metrics.worker_auth_refused.labels(reason).inc()
        log.warning(
            "worker_refused",
            peer=peer,
            reason=reason,
            hint="a worker needs its own key pair, the gateway's public key, and its public key in zmq.workers_dir",
        )

    def _reload_keys(self) -> None:
        """Re-read the accepted keys if their folder changed (a worker whose key went is cut at its next frame)."""
        assert self._auth is not None
        if self._auth.reload_if_changed():
            self._accepted = self._auth.accepted_keys()

    async def close(self) -> None:
        """Stop ticking, fail whatever is still waiting, say DISCONNECT to every worker, close."""
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._runner is not None:
            self._runner.cancel_timer()
        if self._monitor is not None:
            self._loop.remove_reader(self._monitor.fd)
            self._monitor.close()
        if self._auth is not None:
            self._auth.stop()
        if self._sock is not None:
            self._loop.remove_reader(_fd(self._sock))
            # Closing forgets every worker first, so a goodbye that fails has no follow-up.
            self._apply(self.dispatcher.close())
            self._sock.close(linger=CLOSE_LINGER_MS)
        if self._ctx is not None:
            self._ctx.term()

    # ---- what the embedding service calls

    def submit(self, item: Pending) -> None:
        """Queue a chunk (dispatched at once if a worker is free); every outcome settles its future."""
        self._apply(self.dispatcher.submit(item, self._loop.time()))

    def _apply(self, actions: list[Action]) -> None:
        assert self._runner is not None, "start() first"
        self._runner.apply(actions)

    # ---- socket IO

    def _send(self, action: Send) -> bool:
        """Send without blocking; False if the peer is gone or not reading."""
        sock = self._sock
        assert sock is not None
        try:
            sock.send_multipart([action.identity, *encode(action.msg)], flags=zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as exc:
            log.warning("send_failed", worker=action.identity.decode(errors="replace"), error=str(exc))
            return False
        # The ZeroMQ fd is edge-triggered: a send can consume the readable edge, so look again.
        if _readable(sock):
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
            identity = frames[0].bytes
            if self._auth is not None and not self._still_accepted(identity, frames[-1]):
                continue
            self._apply(self.dispatcher.on_frames(identity, frames[1:], self._loop.time()))
        self._loop.call_soon(self._drain)

    def _still_accepted(self, identity: bytes, frame: zmq.Frame) -> bool:
        """False for a peer whose key was removed since its handshake: it is forgotten, its frames go nowhere.

        Its session then dies of silence (no heartbeat reaches it) and its reconnect meets the
        handshake's refusal. The ZAP user id of each frame is the key its connection proved.
        """
        if frame.get("User-Id") in self._accepted:
            return True
        self._apply(self.dispatcher.revoke(identity, self._loop.time()))
        return False

    # ---- liveness

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                if self._auth is not None:
                    self._reload_keys()
                self._apply(self.dispatcher.tick(self._loop.time()))
                self._drain()
            except Exception:  # the heartbeat must survive anything one tick meets
                log.exception("tick_failed")
