"""tests/unit opens no network sockets: the rule checks itself, so a socket test cannot slip in here."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

# asyncio's self-pipe is a socketpair (AF_UNIX, or AF_INET on loopback where AF_UNIX is missing);
# socketpair() makes its sockets already connected, so guarding bind/connect leaves it alone.
_NETWORK = (socket.AF_INET, socket.AF_INET6)


def _refuse(verb: str, original: Any) -> Any:
    def guarded(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
        if self.family in _NETWORK:
            raise RuntimeError(
                f"socket {verb} in tests/unit: this test opens a network socket; "
                "move it to tests/integration (mirroring the package layout)"
            )
        return original(self, *args, **kwargs)

    return guarded


@pytest.fixture(autouse=True)
def _no_network_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for verb in ("bind", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, verb, _refuse(verb, getattr(socket.socket, verb)))
    for verb in ("bind", "connect"):
        monkeypatch.setattr(zmq.Socket, verb, _refuse_zmq(verb, getattr(zmq.Socket, verb)))
    yield


def _refuse_zmq(verb: str, original: Any) -> Any:
    # ZeroMQ opens its sockets in C, out of reach of the guard above; inproc:// never leaves the process.
    def guarded(self: zmq.Socket[Any], addr: str, *args: Any, **kwargs: Any) -> Any:
        if not addr.startswith("inproc://"):
            raise RuntimeError(
                f"zmq {verb} {addr} in tests/unit: this test opens a network socket; "
                "move it to tests/integration (mirroring the package layout)"
            )
        return original(self, addr, *args, **kwargs)

    return guarded
