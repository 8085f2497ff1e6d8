"""The one interpreter of the dispatcher's actions, over the real dispatcher and a send that is a list."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from gateway.dispatch.batcher import ChunkResult, Pending
from gateway.dispatch.dispatcher import Dispatcher, Send, Wake
from gateway.errors import QueueFull
from gateway.metrics import Metrics
from gateway.transport.actions import ActionRunner
from shared.config import load_config
from shared.protocol import Job, Ready
from tests.support.loopback import INFO, MODEL


def dispatcher(*overrides: str) -> Dispatcher:
    return Dispatcher(load_config(None, {}, list(overrides)), Metrics(CollectorRegistry()), 1)


def chunk(loop: asyncio.AbstractEventLoop, *texts: str) -> Pending:
    future: asyncio.Future[ChunkResult] = loop.create_future()
    return Pending(MODEL, texts, "mean", True, loop.time() + 30, loop.time(), future)


async def test_a_window_already_over_when_armed_does_not_break_the_timer() -> None:
    # uvloop answers call_at for a time under half a millisecond away with a plain Handle (no `when()`);
    # a second wake in the same loop turn once raised there, failing that request with a 500.
    loop = asyncio.get_running_loop()
    d = dispatcher("batching.batch_timeout_ms=50")
    d.on_message(b"w", Ready("w", (INFO,), "cpu", 2), loop.time())
    d.submit(chunk(loop, "first"), loop.time())  # goes at once: the worker was idle
    waiting = d.submit(chunk(loop, "second"), loop.time())  # the worker is busy: it waits for the window
    assert [type(a) for a in waiting] == [Wake]
    jobs: list[Job] = []
    sent = asyncio.Event()

    def send(action: Send) -> bool:
        assert isinstance(action.msg, Job)
        jobs.append(action.msg)
        sent.set()
        return True

    runner = ActionRunner(d, loop, send)
    runner.apply([Wake(loop.time() - 1), Wake(loop.time())])  # the later one is kept, not re-armed
    await asyncio.wait_for(sent.wait(), 1)
    assert [j.texts for j in jobs] == [("second",)]


async def test_a_failed_send_drops_the_worker_and_its_job_goes_to_the_next() -> None:
    loop = asyncio.get_running_loop()
    d = dispatcher("batching.batch_timeout_ms=0")
    sent: list[Send] = []

    def send(action: Send) -> bool:
        if action.identity == b"gone":
            return False
        sent.append(action)
        return True

    runner = ActionRunner(d, loop, send)
    runner.apply(d.on_message(b"gone", Ready("gone", (INFO,), "cpu", 1), loop.time()))
    item = chunk(loop, "a", "b")
    runner.apply(d.submit(item, loop.time()))
    assert not d.registry.workers and not item.future.done()  # requeued, not failed
    runner.apply(d.on_message(b"next", Ready("next", (INFO,), "cpu", 1), loop.time()))
    assert [(s.identity, s.msg.texts) for s in sent if isinstance(s.msg, Job)] == [(b"next", ("a", "b"))]


async def test_a_failure_reaches_the_caller_as_its_client_error() -> None:
    loop = asyncio.get_running_loop()
    d = dispatcher("batching.max_queue_texts=1")
    runner = ActionRunner(d, loop, lambda action: True)
    item = chunk(loop, "a", "b")
    runner.apply(d.submit(item, loop.time()))
    error = item.future.exception()
    assert isinstance(error, QueueFull) and error.http_status == 503 and error.headers == {"Retry-After": "1"}
