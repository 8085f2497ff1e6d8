"""A transport in memory: the real dispatcher and action runner, with the socket replaced by a list.

What the gateway would send to workers waits in `sent`; a worker's reply is handed in with
`receive`. The embedding service runs over it unchanged (its tests do), so everything above the
socket is exercised without one. Create it on a running event loop: timers and futures live there.
"""

from __future__ import annotations

import asyncio

from gateway.dispatch.batcher import Pending
from gateway.dispatch.dispatcher import Dispatcher, Send
from gateway.dispatch.fleet import WorkerView
from gateway.metrics import Metrics
from gateway.transport.actions import ActionRunner
from gateway.transport.interface import Transport
from shared.config import Config
from shared.protocol import Job, Message


class Loopback:
    """`Transport` without a socket: sends are kept in order, worker messages come in through `receive`."""

    def __init__(self, cfg: Config, metrics: Metrics, first_job_id: int = 1) -> None:
        self.dispatcher = Dispatcher(cfg, metrics, first_job_id)
        self._workers = WorkerView(self.dispatcher.registry, self.dispatcher.batcher)
        self._runner = ActionRunner(self.dispatcher, asyncio.get_running_loop(), self._keep)
        self.sent: list[Send] = []

    @property
    def workers(self) -> WorkerView:
        return self._workers

    def submit(self, item: Pending) -> None:
        """Queue a chunk; a full queue fails its future like every other outcome."""
        self._runner.apply(self.dispatcher.submit(item, self._runner.now()))

    def receive(self, identity: bytes, msg: Message) -> None:
        """A message from the worker with this routing identity, as if it had come off the socket."""
        self._runner.apply(self.dispatcher.on_message(identity, msg, self._runner.now()))

    def tick(self) -> None:
        """One heartbeat interval's work (expiry, heartbeats, sweeping abandoned chunks)."""
        self._runner.apply(self.dispatcher.tick(self._runner.now()))

    def take_jobs(self) -> list[tuple[bytes, Job]]:
        """The jobs sent since the last call, oldest first, with the identity each went to."""
        jobs = [(s.identity, s.msg) for s in self.sent if isinstance(s.msg, Job)]
        self.sent = [s for s in self.sent if not isinstance(s.msg, Job)]
        return jobs

    def close(self) -> None:
        """Fail whatever still waits and say DISCONNECT to every worker (kept in `sent`)."""
        self._runner.cancel_timer()
        self._runner.apply(self.dispatcher.close())

    def _keep(self, action: Send) -> bool:
        self.sent.append(action)
        return True


# mypy holds the class to the interface the services take, as app.py does for ZmqTransport.
_IS_A_TRANSPORT: type[Transport] = Loopback
