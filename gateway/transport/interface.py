"""What the services need from a transport: submit a chunk, and see the workers. Nothing about sockets."""

from __future__ import annotations

from typing import Protocol

from gateway.dispatch.batcher import Pending
from gateway.dispatch.fleet import WorkerView


class Transport(Protocol):
    """The embedding path's way to the workers: `ZmqTransport` in the gateway, `Loopback` in memory."""

    @property
    def workers(self) -> WorkerView:
        """The read-only view of the connected workers and the models they serve."""
        ...

    def submit(self, item: Pending) -> None:
        """Queue a chunk. Every outcome, a full queue included, settles the chunk's future."""
        ...
