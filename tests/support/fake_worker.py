"""A fake worker that speaks the real protocol over a real DEALER socket.

It proves the gateway's batching and failover logic, never that embedding works: its vector
for a text is [len(text), n, index in job, 1], where the job is the n-th this worker received
(not the gateway's job_id, which starts at a random number).

In-process (`FakeWorker(...)`) for gateway unit tests, or as its own process for integration
tests that need a worker to die for real:

    python -m tests.support.fake_worker --gateway tcp://127.0.0.1:5555 --worker-id w0 --exit-on POISON
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path

import numpy as np
import zmq
import zmq.asyncio

from shared.codec import decode, encode
from shared.curve import WorkerKeys, load_worker_keys
from shared.protocol import Disconnect, Heartbeat, Job, Message, ModelInfo, Ready, Result
from tests.support.keys import local_worker_keys, paths_in
from worker.connection import routing_identity

DIM = 4
MODEL = ModelInfo("all-MiniLM-L6-v2", DIM, 16, "mean", ("minilm",), "fake", "cpu", "f32")
EXIT_POISONED = 3


def fake_vectors(job: Job, n: int) -> np.ndarray:
    return np.array([[len(t), n, i, 1.0] for i, t in enumerate(job.texts)], dtype=np.float32)


class FakeWorker:
    """Answers every JOB after `delay` seconds; can go silent, send raw frames, or die on a marker text."""

    def __init__(
        self,
        endpoint: str,
        worker_id: str = "fake-1",
        *,
        capacity: int = 2,
        delay: float = 0.0,
        model: ModelInfo = MODEL,
        heartbeat_s: float = 0.05,
        exit_on: str = "",
        curve: WorkerKeys | None = None,
        insecure: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.ready = Ready(
            worker_id=worker_id,
            models=(model,),
            device="cpu",
            capacity=capacity,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        self.delay = delay
        self.heartbeat_s = heartbeat_s
        self.exit_on = exit_on  # a job with this in a text kills the process, as a crashing engine would
        self.jobs: list[Job] = []
        self.silent = False  # stop answering and heartbeating, like a hung or dead worker
        self.disconnects: list[str] = []  # the reasons of every DISCONNECT the gateway sent
        self.identity = routing_identity(worker_id)
        self._ctx = zmq.asyncio.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.IDENTITY, self.identity)
        self._sock.setsockopt(zmq.LINGER, 0)
        if not insecure:
            # The secure default: the local workers' pair, unless the test brings its own keys.
            keys = curve or local_worker_keys()
            self._sock.curve_secretkey = keys.pair.secret
            self._sock.curve_publickey = keys.pair.public
            self._sock.curve_serverkey = keys.server_public
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> FakeWorker:
        self._sock.connect(self.endpoint)
        await self.send(self.ready)
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._beat())]
        return self

    async def send(self, msg: Message) -> None:
        await self._sock.send_multipart(encode(msg))  # type: ignore[arg-type]

    async def send_raw(self, frames: list[bytes]) -> None:
        await self._sock.send_multipart(frames)

    async def close(self, goodbye: bool = False) -> None:
        if goodbye:
            await self.send(Disconnect("bye"))
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._sock.close()
        self._ctx.term()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if not self.silent:
                await self.send(Heartbeat())

    async def _receive(self) -> None:
        while True:
            msg = decode(await self._sock.recv_multipart())
            if isinstance(msg, Job):
                self.jobs.append(msg)
                asyncio.create_task(self._answer(msg, len(self.jobs)))  # noqa: RUF006 - tasks end by themselves
            elif isinstance(msg, Disconnect):
                self.disconnects.append(msg.reason)
                await self.send(self.ready)

    async def _answer(self, job: Job, n: int) -> None:
        await asyncio.sleep(self.delay)
        if self.exit_on and any(self.exit_on in t for t in job.texts):
            os._exit(EXIT_POISONED)  # no ERROR, no goodbye: a crash
        if self.silent:
            return
        rows = fake_vectors(job, n)
        counts = tuple(len(t.split()) + 2 for t in job.texts)
        await self.send(Result(job.job_id, rows, counts, counts, 0.1))


async def _serve(args: argparse.Namespace) -> None:
    keys = load_worker_keys(paths_in(Path(args.keys_dir))) if args.keys_dir else None
    worker = await FakeWorker(
        args.gateway,
        args.worker_id,
        capacity=args.capacity,
        delay=args.delay,
        exit_on=args.exit_on,
        curve=keys,
        insecure=keys is None,
    ).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await worker.close(goodbye=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="fake_worker", description="A protocol-true fake worker, for tests.")
    p.add_argument("--gateway", required=True)
    p.add_argument("--worker-id", default="fake-1")
    p.add_argument("--capacity", type=int, default=2)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--exit-on", default="", help="exit at once (code 3) on a job with this in a text")
    p.add_argument("--keys-dir", default="", help="CURVE: the gateway's zmq.keys_dir (none: no CURVE)")
    asyncio.run(_serve(p.parse_args()))


if __name__ == "__main__":
    main()
