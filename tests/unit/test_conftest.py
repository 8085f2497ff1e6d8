"""The guard in tests/unit/conftest.py refuses network sockets and leaves asyncio's self-pipe alone."""

from __future__ import annotations

import asyncio
import socket

import pytest
import zmq


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_a_network_socket_is_refused_with_where_to_move_the_test(family: socket.AddressFamily) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as sock, pytest.raises(RuntimeError, match="tests/integration"):
        sock.bind(("127.0.0.1", 0) if family == socket.AF_INET else ("::1", 0))


def test_a_zmq_tcp_socket_is_refused_and_inproc_is_not() -> None:
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.PAIR)
        with pytest.raises(RuntimeError, match="tests/integration"):
            sock.bind("tcp://127.0.0.1:*")
        sock.bind("inproc://guard")
        sock.close(linger=0)
    finally:
        ctx.term()


async def test_the_event_loop_still_runs() -> None:
    await asyncio.sleep(0)  # the loop's self-pipe is a socketpair: made connected, never bound
