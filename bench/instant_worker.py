"""A stand-in worker that answers every job at once with random unit vectors (no model).

It speaks the real protocol (READY, HEARTBEAT, JOB → RESULT), so a benchmark run against it
measures the gateway and its transports alone, free of model compute and its noise:

    .venv/bin/python -m bench.instant_worker --gateway tcp://127.0.0.1:5555
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import zmq

from shared.codec import decode, encode
from shared.protocol import Disconnect, Heartbeat, Job, ModelInfo, Ready, Result

MINILM = ModelInfo("all-MiniLM-L6-v2", 384, 256, "mean", aliases=("minilm",), backend="instant", device="none")
HEARTBEAT_S = 1.0  # the gateway's default heartbeat.interval_ms


def serve(endpoint: str) -> None:
    """Register, then answer jobs and heartbeat until killed."""
    ready = Ready(worker_id=f"instant-{os.getpid()}", models=(MINILM,), device="none", capacity=4, pid=os.getpid())
    sock = zmq.Context().socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, ready.worker_id.encode())
    sock.connect(endpoint)
    sock.send_multipart(encode(ready))
    rng = np.random.default_rng(0)
    next_beat = time.monotonic() + HEARTBEAT_S
    while True:
        if sock.poll(max(0.0, next_beat - time.monotonic()) * 1000):
            msg = decode(sock.recv_multipart())
            if isinstance(msg, Job):
                rows = rng.standard_normal((len(msg.texts), MINILM.dimension)).astype(np.float32)
                rows /= np.linalg.norm(rows, axis=1, keepdims=True)
                counts = tuple(len(t.split()) + 2 for t in msg.texts)
                sock.send_multipart(encode(Result(msg.job_id, rows, counts, counts, 0.0)), copy=False)
            elif isinstance(msg, Disconnect):
                sock.send_multipart(encode(ready))
        if time.monotonic() >= next_beat:
            sock.send_multipart(encode(Heartbeat()))
            next_beat = time.monotonic() + HEARTBEAT_S


def main() -> None:
    p = argparse.ArgumentParser(description="A protocol-speaking worker that answers instantly (benchmarks only).")
    p.add_argument("--gateway", required=True, help="the gateway's ZeroMQ endpoint")
    serve(p.parse_args().gateway)


if __name__ == "__main__":
    main()
