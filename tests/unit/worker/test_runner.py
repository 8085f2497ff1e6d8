"""The compute loop without sockets: abandoned jobs skipped, each reply tagged with its job, a broken model ends it."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from shared.protocol import Error, ErrorCode, Job, Message, ModelInfo, Result
from worker.embedder import Embedded
from worker.jobs import Assignment, read_tag, result_tag
from worker.pairs import QueryTooLong
from worker.reranker import Scored
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


RERANK_INFO = ModelInfo("r", 1, 16, "cls", kind="rerank")


class Scorer:
    """A reranker for the loop: the logit is the document's length; a long query is the job's fault."""

    @property
    def info(self) -> ModelInfo:
        return RERANK_INFO

    def score(self, pairs: Sequence[tuple[str, str]]) -> Scored:
        if any(len(q) > 10 for q, _ in pairs):
            raise QueryTooLong("pairs[0]: the query leaves its document no room")
        logits = np.array([len(d) for _, d in pairs], np.float32)
        return Scored(logits, [3] * len(pairs), [4] * len(pairs))


def rerank_job(job_id: int, query: str = "q", model: str = "r") -> Job:
    return Job(job_id, model, ("a", "bbb"), "", False, 1000, queries=(query,), query_of=(0, 0))


def test_a_reranker_answers_a_rerank_job_with_one_logit_per_pair() -> None:
    reply = Runner(Scorer()).run_job(rerank_job(1))
    assert isinstance(reply, Result) and reply.embeddings.tolist() == [[1.0], [3.0]]
    assert (reply.token_counts, reply.input_tokens) == ((3, 3), (4, 4))


@pytest.mark.parametrize(
    ("model", "job_", "why"),
    [
        ("scorer", job(1, model="r"), "kind 'rerank': it takes no embedding jobs"),
        ("embedder", rerank_job(1, model="m"), "kind 'embed': it takes no rerank jobs"),
        ("scorer", rerank_job(1, query="a query far too long"), "leaves its document no room"),
    ],
)
def test_a_job_of_the_wrong_kind_or_a_query_too_long_is_the_jobs_fault(model: str, job_: Job, why: str) -> None:
    served = Scorer() if model == "scorer" else Model(threading.Event())
    reply = Runner(served).run_job(job_)
    assert isinstance(reply, Error) and reply.code == ErrorCode.INVALID_JOB and why in reply.message
