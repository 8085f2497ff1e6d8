"""A stand-in worker that answers every job at once with random unit vectors (no model).

It speaks the real protocol (READY, HEARTBEAT, JOB → RESULT), so a benchmark run against it
measures the gateway and its transports alone, free of model compute and its noise:

    .venv/bin/python -m bench.instant_worker --gateway tcp://127.0.0.1:5555 --keys-dir data/keys

With `--keys-dir` (the gateway's `zmq.keys_dir`) it is a CURVE client with the local workers'
pair, like a real worker on the gateway's host; `--insecure` matches a gateway run with
`zmq.allow_insecure`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import zmq

from shared.codec import decode, encode
from shared.config import load_config
from shared.curve import key_paths, load_worker_keys, missing_worker_keys
from shared.protocol import Disconnect, Heartbeat, Job, ModelInfo, Ready, Result

MINILM = ModelInfo("all-MiniLM-L6-v2", 384, 256, "mean", aliases=("minilm",), backend="instant", device="none")
HEARTBEAT_S = 1.0  # the gateway's default heartbeat.interval_ms


def serve(endpoint: str, keys_dir: Path | None) -> None:
    """Register, then answer jobs and heartbeat until killed."""
    ready = Ready(worker_id=f"instant-{os.getpid()}", models=(MINILM,), device="none", capacity=4, pid=os.getpid())
    sock = zmq.Context().socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, ready.worker_id.encode())
    if keys_dir is not None:
        paths = key_paths(load_config(None, {}, [f"zmq.keys_dir={keys_dir}"]))
        while missing_worker_keys(paths):  # the gateway makes them when it starts, maybe after us
            time.sleep(0.1)
        keys = load_worker_keys(paths)
        sock.curve_secretkey, sock.curve_publickey = keys.pair.secret, keys.pair.public
        sock.curve_serverkey = keys.server_public
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
    security = p.add_mutually_exclusive_group(required=True)
    security.add_argument("--keys-dir", type=Path, help="CURVE: the gateway's zmq.keys_dir (local workers' pair)")
    security.add_argument("--insecure", action="store_true", help="no CURVE: the gateway runs with zmq.allow_insecure")
    args = p.parse_args()
    serve(args.gateway, args.keys_dir)


if __name__ == "__main__":
    main()
