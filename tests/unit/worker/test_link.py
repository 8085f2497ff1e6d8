"""The worker's routing identity: unique per process, readable as the worker id."""

from __future__ import annotations

import os

from worker.link import routing_identity


def test_the_routing_identity_names_the_worker_and_differs_per_draw() -> None:
    first, second = routing_identity("mac-w0"), routing_identity("mac-w0")
    assert first.startswith(f"mac-w0/{os.getpid()}/".encode())
    assert first != second  # two processes under one --worker-id never share an identity
