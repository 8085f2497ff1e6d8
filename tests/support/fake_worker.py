"""A fake worker that speaks the real protocol over a real DEALER socket, for gateway unit tests.

It proves the gateway's batching and failover logic, never that embedding works: its vector
for a text is [len(text), n, index in job, 1], where the job is the n-th this worker received
(not the gateway's job_id, which starts at a random number).
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import zmq
import zmq.asyncio

from shared.codec import decode, encode
from shared.protocol import Disconnect, Heartbeat, Job, Message, ModelInfo, Ready, Result

DIM = 4
MODEL = ModelInfo("all-MiniLM-L6-v2", DIM, 16, "mean", ("minilm",), "fake", "cpu", "f32")


def fake_vectors(job: Job, n: int) -> np.ndarray:
    return np.array([[len(t), n, i, 1.0] for i, t in enumerate(job.texts)], dtype=np.float32)


class FakeWorker:
    """Answers every JOB after `delay` seconds; can go silent, or send raw frames."""

    def __init__(
        self,
        endpoint: str,
        worker_id: str = "fake-1",
        *,
        capacity: int = 2,
        delay: float = 0.0,
        model: ModelInfo = MODEL,
        heartbeat_s: float = 0.05,
    ) -> None:
        self.endpoint = endpoint
        self.ready = Ready(worker_id=worker_id, models=(model,), device="cpu", capacity=capacity)
        self.delay = delay
        self.heartbeat_s = heartbeat_s
        self.jobs: list[Job] = []
        self.silent = False  # stop answering and heartbeating, like a hung or dead worker
        self.disconnects = 0
        self._ctx = zmq.asyncio.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.IDENTITY, worker_id.encode())
        self._sock.setsockopt(zmq.LINGER, 0)
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
                self.disconnects += 1
                await self.send(self.ready)

    async def _answer(self, job: Job, n: int) -> None:
        await asyncio.sleep(self.delay)
        if self.silent:
            return
        rows = fake_vectors(job, n)
        counts = tuple(len(t.split()) + 2 for t in job.texts)
        await self.send(Result(job.job_id, rows, counts, counts, 0.1))
