"""A gateway played by the test: a bare ROUTER (a CURVE server with the session's gateway key) that
sends exactly what a scenario says, and records what the worker sends back.

For protocol scenarios a real gateway cannot stage on demand (silence, a REFUSED, a DISCONNECT at
a chosen moment). It heartbeats the workers it has heard from while it waits, unless told to be silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from shared.codec import decode, encode
from shared.curve import load_pair
from shared.protocol import Heartbeat, Message
from tests.support.keys import keys_dir, paths_in


@dataclass(frozen=True)
class Heard:
    identity: bytes
    msg: Message
    at: float  # time.monotonic()


class ScriptedGateway:
    def __init__(self, endpoint: str, interval_s: float = 0.2) -> None:
        self.endpoint = endpoint
        self.interval_s = interval_s
        self.silent = False  # no heartbeats: the worker's liveness countdown runs
        self.heard: list[Heard] = []
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        pair = load_pair(paths_in(keys_dir()).server_key, "zmq.server_key")
        self._sock.curve_server = True
        self._sock.curve_secretkey = pair.secret
        self._sock.curve_publickey = pair.public
        self._sock.bind(endpoint)
        self._next_beat = time.monotonic()

    def close(self) -> None:
        self._sock.close()
        self._ctx.term()

    def send(self, identity: bytes, msg: Message) -> None:
        self._sock.send_multipart([identity, *encode(msg)])

    def peers(self) -> set[bytes]:
        return {h.identity for h in self.heard}

    def wait_for(self, what: Callable[[Heard], bool], timeout: float) -> Heard:
        """The first message from now on that `what` accepts (AssertionError after `timeout` seconds)."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            heard = self._receive(min(left, self.interval_s))
            if heard is not None and what(heard):
                return heard
        kinds = [type(h.msg).__name__ for h in self.heard]
        raise AssertionError(f"nothing of the kind within {timeout}s; heard {kinds}")

    def expect(self, kind: type, timeout: float) -> Heard:
        return self.wait_for(lambda h: isinstance(h.msg, kind), timeout)

    def listen(self, seconds: float) -> list[Heard]:
        """Everything heard in the next `seconds`."""
        start = len(self.heard)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._receive(min(left, self.interval_s))
        return self.heard[start:]

    def _receive(self, timeout: float) -> Heard | None:
        now = time.monotonic()
        if not self.silent and now >= self._next_beat:
            for peer in self.peers():
                self.send(peer, Heartbeat())
            self._next_beat = now + self.interval_s
        wait = timeout if self.silent else min(timeout, self._next_beat - now)
        if not self._sock.poll(round(max(0.0, wait) * 1000)):
            return None
        identity, *frames = self._sock.recv_multipart()
        heard = Heard(identity, decode(frames), time.monotonic())
        self.heard.append(heard)
        return heard
