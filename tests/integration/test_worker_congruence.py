"""The fake worker and the real one, held to the same protocol scenarios with the same assertions.

Each scenario runs twice: against `tests.support.fake_worker` (the real worker's IO thread,
`Session` and compute loop around a fake model) and against `akidb-worker` with the real model.
Most scenarios face a gateway the test plays (`ScriptedGateway`), so silence, a restart, a
REFUSED or a DISCONNECT come exactly when the scenario says; the dimension clash faces the real
gateway. Only what the model computes may differ: the row width is read from the worker's READY.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.protocol import REFUSED, Disconnect, Error, ErrorCode, Heartbeat, Job, ModelInfo, Ready, Result
from tests.support.backends import fastest_backend
from tests.support.fake_worker import MODEL, RERANKER, FakeWorker
from tests.support.gateway import make_config, running_gateway
from tests.support.processes import TEST_HEARTBEAT, ChildProcess, FakeWorkerProcess, WorkerProcess, free_port
from tests.support.scripted_gateway import Heard, ScriptedGateway

MINILM = "all-MiniLM-L6-v2"
TINY_BERT_RERANKER = Path(__file__).parents[1] / "fixtures" / "tiny-bert-reranker"
INTERVAL_S = 0.2  # TEST_HEARTBEAT, which both kinds of worker process run with
LIVENESS = 5
assert f"heartbeat.interval_ms={round(INTERVAL_S * 1000)}" in TEST_HEARTBEAT
assert f"heartbeat.liveness={LIVENESS}" in TEST_HEARTBEAT
JOIN_S = 180  # the real worker loads and warms its model first, on a machine other tests load too
SOON_S = 15  # anything the protocol says happens within a few intervals, with room for a loaded machine
EXIT_CONFIG = 2

pytestmark = pytest.mark.parametrize("kind", ["fake", "real"])


def start_worker(kind: str, gateways: str, *args: str) -> ChildProcess:
    if kind == "fake":
        return FakeWorkerProcess(gateways, "--worker-id", "cg", *args)
    return WorkerProcess(gateways, "--backend", fastest_backend(), "--worker-id", "cg", *args)


def start_reranker(kind: str, gateways: str) -> ChildProcess:
    """A reranker: the fake's, or the real worker on the committed tiny BERT cross-encoder under MiniLM's name."""
    if kind == "fake":
        return start_worker(kind, gateways, "--kind", "rerank")
    return start_worker(kind, gateways, "--model", RERANKER.name, "--model-path", str(TINY_BERT_RERANKER))


def new_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def gateway() -> Iterator[ScriptedGateway]:
    gw = ScriptedGateway(new_endpoint(), INTERVAL_S)
    yield gw
    gw.close()


def joined(gw: ScriptedGateway, worker: ChildProcess) -> Heard:
    """The worker's first READY (failing with its log if it never comes)."""
    try:
        return gw.expect(Ready, JOIN_S)
    except AssertionError:
        pytest.fail(f"no READY; the worker's log:\n{worker.output()[-3000:]}")


def exit_code(worker: ChildProcess, timeout: float = 30) -> int:
    try:
        return worker.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not exit; its log:\n{worker.output()[-3000:]}")


def answers(gw: ScriptedGateway, ready: Heard, jobs: list[Job]) -> dict[int, Result | Error]:
    """Send the jobs to the worker and collect its one reply to each, by job id."""
    for job in jobs:
        gw.send(ready.identity, job)
    replies: dict[int, Result | Error] = {}
    while len(replies) < len(jobs):
        got = gw.wait_for(lambda h: isinstance(h.msg, (Result, Error)), SOON_S * 4).msg
        assert isinstance(got, (Result, Error)) and got.job_id not in replies
        replies[got.job_id] = got
    return replies


def readies(heard: list[Heard]) -> list[Heard]:
    return [h for h in heard if isinstance(h.msg, Ready)]


def test_join_announces_the_worker_then_heartbeats(kind: str, gateway: ScriptedGateway) -> None:
    worker = start_worker(kind, gateway.endpoint)
    try:
        ready = joined(gateway, worker)
        msg = ready.msg
        assert isinstance(msg, Ready)
        assert (msg.worker_id, msg.capacity, msg.pid) == ("cg", 2, worker.pid)
        assert [m.name for m in msg.models] == [MINILM] and "minilm" in msg.models[0].aliases
        assert ready.identity.startswith(f"cg/{worker.pid}/".encode())
        later = gateway.listen(10 * INTERVAL_S)
        assert any(isinstance(h.msg, Heartbeat) for h in later)
        assert readies(later) == [] and {h.identity for h in later} == {ready.identity}
    finally:
        assert worker.stop() == 0


def test_a_silent_gateway_is_left_after_its_lives_and_rejoined_when_it_speaks(
    kind: str, gateway: ScriptedGateway
) -> None:
    worker = start_worker(kind, gateway.endpoint)
    try:
        first = joined(gateway, worker)
        gateway.listen(3 * INTERVAL_S)  # a few heartbeats both ways
        gateway.silent = True
        went_silent = gateway.heard[-1].at
        again = gateway.expect(Ready, SOON_S)  # it gave up on us, reconnected and announced itself again
        assert again.identity == first.identity  # one routing identity for the life of the process
        # Not before its lives ran out: `liveness` silent intervals from our last heartbeat, which went
        # out up to an interval before the worker's last message we read (one interval more of margin).
        assert again.at - went_silent >= (LIVENESS - 2) * INTERVAL_S
        gateway.silent = False
        later = gateway.listen(15 * INTERVAL_S)  # heard again: the worker stays
        assert readies(later) == [] and any(isinstance(h.msg, Heartbeat) for h in later)
    finally:
        assert worker.stop() == 0


def test_a_restarted_gateway_gets_the_worker_back(kind: str, gateway: ScriptedGateway) -> None:
    worker = start_worker(kind, gateway.endpoint)
    try:
        first = joined(gateway, worker)
        gateway.close()
        restarted = ScriptedGateway(gateway.endpoint, INTERVAL_S)
        gateway.__dict__.update(restarted.__dict__)  # the fixture closes whichever is current
        seen = gateway.wait_for(lambda h: True, SOON_S)
        if isinstance(seen.msg, Heartbeat):  # as the real gateway answers a peer it does not know
            gateway.send(seen.identity, Disconnect("unknown worker; send READY"))
        again = seen if isinstance(seen.msg, Ready) else gateway.expect(Ready, SOON_S)
        assert again.identity == first.identity
    finally:
        assert worker.stop() == 0


def test_refused_stops_the_worker_with_status_2_and_no_second_ready(kind: str, gateway: ScriptedGateway) -> None:
    worker = start_worker(kind, gateway.endpoint)
    try:
        ready = joined(gateway, worker)
        gateway.send(ready.identity, Disconnect(f"{REFUSED}model {MINILM} is served with dimension 7"))
        assert exit_code(worker) == EXIT_CONFIG
        gateway.listen(5 * INTERVAL_S)
        assert readies(gateway.heard) == [ready]
        assert "gateway_refused_worker" in worker.output()
    finally:
        worker.stop()


def test_failing_jobs_get_errors_and_the_worker_serves_on(kind: str, gateway: ScriptedGateway) -> None:
    worker = start_worker(kind, gateway.endpoint)
    try:
        ready = joined(gateway, worker)
        assert isinstance(ready.msg, Ready)
        dimension = ready.msg.models[0].dimension
        jobs = [
            Job(11, "some-other-model", ("a",), "mean", True, 5000),
            Job(12, MINILM, ("a",), "mean", True, 0),  # arrived after its deadline
            Job(13, MINILM, ("a",), "no-such-pooling", True, 5000),
            Job(14, "minilm", ("hello", "world"), "mean", True, 30000),  # an alias it announced
        ]
        replies = answers(gateway, ready, jobs)
        codes = {i: r.code for i, r in replies.items() if isinstance(r, Error)}
        assert codes == {11: ErrorCode.UNKNOWN_MODEL, 12: ErrorCode.DEADLINE_EXCEEDED, 13: ErrorCode.INVALID_JOB}
        result = replies[14]
        assert isinstance(result, Result) and result.embeddings.shape == (2, dimension)
        assert worker.proc.poll() is None  # a bad job is the job's fault, never the worker's end
    finally:
        assert worker.stop() == 0


def test_a_reranker_announces_its_kind_and_scores_pairs_and_refuses_embedding_jobs(
    kind: str, gateway: ScriptedGateway
) -> None:
    worker = start_reranker(kind, gateway.endpoint)
    try:
        ready = joined(gateway, worker)
        assert isinstance(ready.msg, Ready)
        info = ready.msg.models[0]
        assert (info.name, info.kind, info.dimension, info.max_tokens) == (RERANKER.name, "rerank", 1, 512)
        pairs = ("the cat sat", "a dog ran far", "cats sit on mats")
        jobs = [
            Job(21, RERANKER.name, pairs, "", False, 30000, queries=("cat", "dog"), query_of=(0, 1, 0)),
            Job(22, RERANKER.name, ("an embedding job",), "mean", True, 30000),
            Job(23, RERANKER.name, ("late",), "", False, 0, queries=("q",), query_of=(0,)),
        ]
        replies = answers(gateway, ready, jobs)
        codes = {i: r.code for i, r in replies.items() if isinstance(r, Error)}
        assert codes == {22: ErrorCode.INVALID_JOB, 23: ErrorCode.DEADLINE_EXCEEDED}
        result = replies[21]
        assert isinstance(result, Result) and result.embeddings.shape == (3, 1)  # one raw logit per pair
        assert len(result.token_counts) == 3 and all(n > 3 for n in result.token_counts)
        assert worker.proc.poll() is None
    finally:
        assert worker.stop() == 0


def test_disconnect_is_answered_with_ready_and_a_stop_says_goodbye(kind: str, gateway: ScriptedGateway) -> None:
    worker = start_worker(kind, gateway.endpoint)
    try:
        first = joined(gateway, worker)
        gateway.send(first.identity, Disconnect("gateway shutting down"))
        again = gateway.expect(Ready, SOON_S)
        assert again.identity == first.identity
        worker.proc.send_signal(signal.SIGTERM)
        bye = gateway.expect(Disconnect, SOON_S)
        assert bye.msg == Disconnect("worker shutting down") and bye.identity == first.identity
        assert exit_code(worker) == 0
    finally:
        worker.stop()


def test_two_gateways_with_one_job_id_each_get_their_own_answer(kind: str) -> None:
    a, b = ScriptedGateway(new_endpoint(), INTERVAL_S), ScriptedGateway(new_endpoint(), INTERVAL_S)
    worker = start_worker(kind, f"{a.endpoint},{b.endpoint}")
    try:
        ready_a, ready_b = joined(a, worker), joined(b, worker)
        assert ready_a.identity == ready_b.identity  # one worker, one identity, two sessions
        a.send(ready_a.identity, Job(7, MINILM, ("one text",), "mean", True, 30000))
        b.send(ready_b.identity, Job(7, MINILM, ("three", "texts", "here"), "mean", True, 30000))
        got_a = a.wait_for(lambda h: isinstance(h.msg, (Result, Error)), SOON_S * 4).msg
        got_b = b.wait_for(lambda h: isinstance(h.msg, (Result, Error)), SOON_S * 4).msg
        assert isinstance(got_a, Result) and isinstance(got_b, Result)
        assert (got_a.job_id, len(got_a.embeddings)) == (7, 1)
        assert (got_b.job_id, len(got_b.embeddings)) == (7, 3)
    finally:
        assert worker.stop() == 0
        a.close()
        b.close()


async def test_a_model_served_with_another_dimension_refuses_the_worker(kind: str, tmp_path: Path) -> None:
    """The real gateway already serves MiniLM at 7 dimensions: the worker is refused and stops, status 2."""
    endpoint = new_endpoint()
    async with running_gateway(make_config(endpoint, str(tmp_path))) as gw:
        impostor = ModelInfo(MINILM, 7, MODEL.max_tokens, MODEL.pooling, MODEL.aliases, "fake", "cpu", "f32")
        first = await FakeWorker(endpoint, "seven", model=impostor).start()
        try:
            await gw.wait_for_workers(1)
            worker = start_worker(kind, endpoint)
            try:
                assert await asyncio.to_thread(exit_code, worker, JOIN_S) == EXIT_CONFIG
                assert "gateway_refused_worker" in worker.output() and "dimension" in worker.output()
            finally:
                worker.stop()
            body = await (await gw.client.get("/workers")).json()
            assert [w["worker_id"] for w in body["workers"]] == ["seven"]
        finally:
            await first.close()
