"""The compute loop without sockets: abandoned jobs skipped, each reply tagged with its job, a broken model ends it."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from shared.protocol import Error, ErrorCode, Job, Message, ModelInfo, Result
from worker.embedder import Embedded
from worker.jobs import Assignment, read_tag, result_tag
from worker.runner import FatalWorkerError, Runner

INFO = ModelInfo("m", 2, 16, "mean", ("alias",))


class Model:
    def __init__(self, stop: threading.Event, breaks_on: str = "") -> None:
        self.stop, self.breaks_on = stop, breaks_on
        self.seen: list[tuple[str, ...]] = []

    @property
    def info(self) -> ModelInfo:
        return INFO

    def embed(self, texts: Sequence[str], pooling: str | None, normalize: bool, prompt: str) -> Embedded:
        self.seen.append(tuple(texts))
        if self.breaks_on in texts:
            raise MemoryError("out of memory")
        return Embedded(np.ones((len(texts), 2), np.float32), [1] * len(texts), [1] * len(texts))


def job(job_id: int, *texts: str, model: str = "m") -> Job:
    return Job(job_id, model, texts or ("t",), "mean", True, 1000)


def serve(runner: Runner, stop: threading.Event, last: int) -> list[tuple[Assignment, Message]]:
    """Run the loop until the job numbered `last` is answered."""
    sent: list[tuple[Assignment, Message]] = []

    def send(item: Assignment, msg: Message) -> None:
        sent.append((item, msg))
        if item.job.job_id == last:
            stop.set()

    runner.serve(send, stop)
    return sent


def test_jobs_run_in_arrival_order_from_every_session_and_abandoned_ones_are_skipped() -> None:
    stop = threading.Event()
    model = Model(stop)
    runner = Runner(model)
    items = [Assignment(0, job(1, "a")), Assignment(1, job(1, "b")), Assignment(0, job(2, "c"), abandoned=True)]
    items.append(Assignment(1, job(3, "d", model="alias")))
    for item in items:
        runner.jobs.put(item)
    sent = serve(runner, stop, last=3)
    assert model.seen == [("a",), ("b",), ("d",)]  # the abandoned job never reached the model
    assert [(i.session, m.job_id) for i, m in sent] == [(0, 1), (1, 1), (1, 3)]  # type: ignore[union-attr]
    assert all(isinstance(m, Result) for _, m in sent)


def test_a_job_for_another_model_gets_an_error_and_the_loop_goes_on() -> None:
    stop = threading.Event()
    runner = Runner(Model(stop))
    runner.jobs.put(Assignment(0, job(1, model="other")))
    runner.jobs.put(Assignment(0, job(2)))
    sent = serve(runner, stop, last=2)
    assert isinstance(sent[0][1], Error) and sent[0][1].code == ErrorCode.UNKNOWN_MODEL
    assert isinstance(sent[1][1], Result)


def test_a_broken_model_sends_its_error_then_ends_the_loop() -> None:
    stop = threading.Event()
    runner = Runner(Model(stop, breaks_on="boom"))
    runner.jobs.put(Assignment(4, job(9, "boom")))
    sent: list[tuple[Assignment, Message]] = []
    with pytest.raises(FatalWorkerError):
        runner.serve(lambda item, msg: sent.append((item, msg)), stop)
    ((item, msg),) = sent
    assert item.session == 4 and isinstance(msg, Error) and msg.code == ErrorCode.INTERNAL
    assert "out of memory" in msg.message


def test_the_result_tag_names_the_session_and_the_job() -> None:
    assert read_tag(result_tag(3, 2**62)) == (3, 2**62)
