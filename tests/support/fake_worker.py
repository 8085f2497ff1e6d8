"""A fake worker: the real worker's IO thread, `Session` and compute loop, around a fake model.

Only the compute is fake, so the protocol it speaks is the real worker's by construction (READY,
heartbeats, liveness, backoff, DISCONNECT and REFUSED, ERROR); `tests/integration/
test_worker_congruence.py` holds the two to the same scenarios. It proves the gateway's batching
and failover logic, never that embedding works: its vector for a text is [len(text), n, index in
job, 1], where the job is the n-th this worker ran (not the gateway's job_id, which starts at a
random number). As a reranker (`RERANKER`, or `--kind rerank`) a pair's logit is the number of the
query's words its document holds, plus len(document)/1000 to break ties.

In-process (`FakeWorker(...)`) for gateway tests, or as its own process for tests that need a
worker to die for real:

    python -m tests.support.fake_worker --gateway tcp://127.0.0.1:5555 --worker-id w0 --exit-on POISON

It crashes on demand, which the real worker never does for a test: `exit_on` (a text holding it
kills the process at once, no goodbye) and `fail_on` (the model raises: the real fatal path, an
ERROR then exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shared.config import POOLINGS, Config, load_config
from shared.curve import WorkerKeys
from shared.logs import configure_logging
from shared.protocol import Job, Message, ModelInfo
from tests.support.keys import local_worker_keys
from tests.support.processes import TEST_HEARTBEAT
from worker.connection import Connection
from worker.embedder import Embedded
from worker.main import run_worker, serve
from worker.pairs import Pair
from worker.reranker import Scored
from worker.runner import Runner

DIM = 4
MODEL = ModelInfo("all-MiniLM-L6-v2", DIM, 16, "mean", ("minilm",), "fake", "cpu", "f32")
RERANKER = ModelInfo(
    "ms-marco-MiniLM-L-6-v2",
    1,
    512,
    "cls",
    ("cross-encoder/ms-marco-MiniLM-L-6-v2",),
    "fake",
    "cpu",
    "f32",
    kind="rerank",
)
EXIT_POISONED = 3


class FakeModel:
    """The fake compute behind the real `Runner`: rows that say which job and text they are."""

    def __init__(
        self,
        info: ModelInfo = MODEL,
        delay: float = 0.0,
        exit_on: str = "",
        fail_on: str = "",
        stopping: threading.Event | None = None,
    ) -> None:
        self._info = info
        self.delay = delay
        self.exit_on = exit_on
        self.fail_on = fail_on
        self.stopping = stopping or threading.Event()  # a stop cuts the delay short
        self.runs = 0

    @property
    def info(self) -> ModelInfo:
        return self._info

    def embed(self, texts: Sequence[str], pooling: str | None, normalize: bool, prompt: str) -> Embedded:
        self.runs += 1
        if self.exit_on and any(self.exit_on in t for t in texts):
            os._exit(EXIT_POISONED)  # no ERROR, no goodbye: a crash
        self.stopping.wait(self.delay)
        if (pooling or self._info.pooling) not in POOLINGS:  # as `worker.pooling.pool` refuses it
            raise ValueError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise RuntimeError(f"the fake model fails on {self.fail_on!r} (tests only)")
        rows = np.array([[len(t), self.runs, i, 1.0] for i, t in enumerate(texts)], dtype=np.float32)
        counts = [len(t.split()) + 2 for t in texts]
        return Embedded(rows, counts, counts)

    def score(self, pairs: Sequence[Pair]) -> Scored:
        """The fake reranker: query words found in the document, len(document)/1000 breaking ties."""
        self.runs += 1
        documents = [d for _, d in pairs]
        if self.exit_on and any(self.exit_on in d for d in documents):
            os._exit(EXIT_POISONED)
        self.stopping.wait(self.delay)
        if self.fail_on and any(self.fail_on in d for d in documents):
            raise RuntimeError(f"the fake model fails on {self.fail_on!r} (tests only)")
        logits = [sum(w in d.lower().split() for w in q.lower().split()) + len(d) / 1000 for q, d in pairs]
        counts = [len(q.split()) + len(d.split()) + 3 for q, d in pairs]
        return Scored(np.array(logits, dtype=np.float32), counts, counts)


class FakeRunner(Runner):
    """The real compute loop; it also keeps every job it ran, and lets a test subclass answer instead."""

    def __init__(self, model: FakeModel, owner: FakeWorker) -> None:
        super().__init__(model)
        self.owner = owner

    def run_job(self, job: Job) -> Message:
        self.owner.jobs.append(job)
        return self.owner.reply(job) or super().run_job(job)


def fake_config(endpoint: str, worker_id: str, capacity: int, *overrides: str) -> Config:
    """A worker config for the fake: the endpoint(s), its id and capacity, then `overrides`."""
    base = [f"zmq.connect={endpoint}", f"worker.worker_id={worker_id}", f"worker.capacity={capacity}"]
    return load_config(None, {}, [*base, *overrides])


class FakeWorker:
    """The real worker's threads in this process, on a fake model; started and stopped from asyncio tests."""

    def __init__(
        self,
        endpoint: str,
        worker_id: str = "fake-1",
        *,
        capacity: int = 2,
        delay: float = 0.0,
        model: ModelInfo = MODEL,
        heartbeat_s: float = 0.05,
        liveness: int = 40,
        fail_on: str = "",
        curve: WorkerKeys | None = None,
        insecure: bool = False,
    ) -> None:
        # Fast heartbeats, so a gateway notices a lost fake quickly; many lives, because the
        # gateway under test heartbeats at its own, slower, pace.
        timing = [f"heartbeat.interval_ms={round(heartbeat_s * 1000)}", f"heartbeat.liveness={liveness}"]
        self.cfg = fake_config(endpoint, worker_id, capacity, *timing)
        # The secure default: the local workers' pair, unless the test brings its own keys.
        self.curve = None if insecure else (curve or local_worker_keys())
        self.stopping = threading.Event()
        self.jobs: list[Job] = []
        self.runner = FakeRunner(FakeModel(model, delay, fail_on=fail_on, stopping=self.stopping), self)
        self.conn: Connection | None = None
        self.exit_code: int | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"fake-worker-{worker_id}", daemon=True)

    def reply(self, job: Job) -> Message | None:
        """A test's own answer to `job` instead of the model's (None: run the model)."""
        return None

    @property
    def disconnects(self) -> list[str]:
        """The reasons of every DISCONNECT the gateways sent."""
        return [r for s in self.conn.sessions for r in s.disconnects] if self.conn else []

    async def start(self) -> FakeWorker:
        self._thread.start()
        await asyncio.to_thread(self._started.wait, 10)
        return self

    async def close(self, goodbye: bool = False) -> None:
        """Stop; without `goodbye` the sockets just close, as when a process dies."""
        if self.conn is not None:
            self.conn.say_goodbye = goodbye
        self.stopping.set()
        await asyncio.to_thread(self._thread.join, 15)

    def _run(self) -> None:
        self.exit_code = run_worker(self.cfg, self.runner, self.curve, self.stopping, self._on_start)

    def _on_start(self, conn: Connection) -> None:
        self.conn = conn
        self._started.set()


def main() -> None:
    p = argparse.ArgumentParser(prog="fake_worker", description="The real worker around a fake model, for tests.")
    p.add_argument("--gateway", required=True, help="endpoint(s), comma-separated")
    p.add_argument("--worker-id", default="fake-1")
    p.add_argument("--capacity", type=int, default=2)
    p.add_argument("--delay", type=float, default=0.0, help="seconds each job takes")
    p.add_argument("--dimension", type=int, default=DIM)
    p.add_argument("--kind", choices=("embed", "rerank"), default="embed", help="fake an embedder or a reranker")
    p.add_argument("--exit-on", default="", help="exit at once (code 3) on a job with this in a text")
    p.add_argument("--fail-on", default="", help="the model fails on a job with this in a text (ERROR, exit 1)")
    p.add_argument("--keys-dir", default="", help="CURVE: the gateway's zmq.keys_dir (none: no CURVE)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any worker config key")
    args = p.parse_args()
    keys = f"zmq.keys_dir={Path(args.keys_dir)}" if args.keys_dir else "zmq.allow_insecure=true"
    cfg = fake_config(args.gateway, args.worker_id, args.capacity, *TEST_HEARTBEAT, keys, *args.set)
    configure_logging(cfg.logging.level, "json", process="worker")
    model = ModelInfo(MODEL.name, args.dimension, MODEL.max_tokens, MODEL.pooling, MODEL.aliases, "fake", "cpu", "f32")
    if args.kind == "rerank":
        model = RERANKER
    sys.exit(serve(cfg, FakeModel(model, args.delay, args.exit_on, args.fail_on)))


if __name__ == "__main__":
    main()
