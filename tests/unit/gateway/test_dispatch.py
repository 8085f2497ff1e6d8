"""The dispatch policy as tables: events in, actions out, a fake clock; no sockets, no sleeps."""

from __future__ import annotations

from concurrent.futures import Future

import msgpack
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from gateway.dispatch.batcher import ChunkResult, Pending
from gateway.dispatch.dispatcher import Action, Deliver, Dispatcher, Fail, Send, Wake
from gateway.dispatch.failures import Reason
from gateway.dispatch.fleet import WorkerView
from gateway.errors import ApiError, InvalidInput, NoWorker, PoisonJob, QueueFull, Timeout, WorkerFailed, from_dispatch
from gateway.metrics import Metrics
from shared.codec import MAGIC, encode
from shared.config import load_config
from shared.protocol import (
    PROTOCOL_VERSION,
    Disconnect,
    Error,
    ErrorCode,
    Heartbeat,
    Job,
    Message,
    ModelInfo,
    MsgType,
    Ready,
    Result,
)
from tests.support.loopback import INFO, MODEL, result_for

FIRST_JOB = 1000
# Heartbeats every 0.1 s, a worker silent for 0.3 s is gone; a 50 ms batching window.
BASE = ("heartbeat.interval_ms=100", "heartbeat.liveness=3", "batching.batch_timeout_ms=50")


class Fleet:
    """A dispatcher with its metrics and view, and helpers that speak for workers and callers."""

    def __init__(self, *overrides: str) -> None:
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.d = Dispatcher(load_config(None, {}, [*BASE, *overrides]), self.metrics, FIRST_JOB)
        self.view = WorkerView(self.d.registry)

    def ready(
        self, identity: bytes, capacity: int = 2, *, now: float = 0.0, worker_id: str | None = None, **kw: object
    ) -> list[Action]:
        wid = worker_id or identity.decode()
        return self.d.on_message(identity, Ready(wid, (INFO,), "cpu", capacity, **kw), now)  # type: ignore[arg-type]

    def submit(
        self, n: int = 1, *, now: float = 0.0, pooling: str = "mean", text: str = "t"
    ) -> tuple[Pending, list[Action]]:
        item = Pending(MODEL, tuple(f"{text}{i}" for i in range(n)), pooling, True, now + 30.0, now, Future())
        return item, self.d.submit(item, now)

    def answer(self, identity: bytes, job: Job, now: float = 0.0) -> list[Action]:
        return self.d.on_message(identity, result_for(job), now)

    def metric(self, name: str, **labels: str) -> float:
        return float(self.registry.get_sample_value(name, labels or None) or 0.0)


def sent(actions: list[Action], identity: bytes | None = None) -> list[Message]:
    return [a.msg for a in actions if isinstance(a, Send) and (identity is None or a.identity == identity)]


def jobs(actions: list[Action], identity: bytes | None = None) -> list[Job]:
    return [m for m in sent(actions, identity) if isinstance(m, Job)]


def job_to(actions: list[Action], identity: bytes) -> Job:
    (job,) = jobs(actions, identity)
    return job


def delivered(actions: list[Action]) -> dict[Pending, ChunkResult]:
    return {a.item: a.result for a in actions if isinstance(a, Deliver)}


def failed(actions: list[Action]) -> dict[Pending, ApiError]:
    """Each failed caller with the error it will see (the dispatcher's failure, mapped as the transport maps it)."""
    return {item: from_dispatch(a.failure) for a in actions if isinstance(a, Fail) for item in a.items}


def wakes(actions: list[Action]) -> list[float]:
    return [a.at for a in actions if isinstance(a, Wake)]


# ---- batching


def test_a_lone_request_goes_at_once_without_waiting_for_the_window() -> None:
    f = Fleet("batching.batch_timeout_ms=2000")
    f.ready(b"w")
    item, out = f.submit(1)
    assert jobs(out, b"w")[0].texts == item.texts
    assert wakes(out) == []


def test_chunks_coalesce_while_the_worker_is_busy_and_each_caller_gets_its_own_row() -> None:
    f = Fleet()
    f.ready(b"w", capacity=1)
    _, out = f.submit(1, now=0.0, text="first")
    first = job_to(out, b"w")
    waiting = []
    for i in range(9):
        item, out = f.submit(1, now=0.01, text="x" * (i + 1))
        assert jobs(out) == []  # the only slot is taken
        waiting.append(item)
    out = f.answer(b"w", first, now=0.02)
    second = job_to(out, b"w")  # the worker is free again: the nine go together at once
    assert len(second.texts) == 9
    rows = delivered(f.answer(b"w", second, now=0.03))
    assert [rows[item].vectors[0][0] for item in waiting] == [len(item.texts[0]) for item in waiting]
    assert len({len(item.texts[0]) for item in waiting}) == 9  # nine different answers
    assert f.metric("akidb_embedding_batch_size_count", model=MODEL) == 2
    assert f.metric("akidb_embedding_batch_size_sum", model=MODEL) == 10


def test_while_the_worker_is_busy_a_chunk_waits_for_the_window_then_goes() -> None:
    f = Fleet()
    f.ready(b"w", capacity=2)
    _, out = f.submit(1, now=0.0)
    assert len(jobs(out)) == 1
    _, out = f.submit(1, now=0.01)
    (at,) = wakes(out)
    assert jobs(out) == [] and at == pytest.approx(0.06)
    assert jobs(f.d.wake(0.03)) == []  # too early: still waiting
    assert len(jobs(f.d.wake(at), b"w")) == 1


def test_a_full_batch_goes_before_the_window_ends() -> None:
    f = Fleet("batching.batch_timeout_ms=5000", "batching.max_batch_size=4")
    f.ready(b"w", capacity=2)
    sizes = []
    for _ in range(5):
        _, out = f.submit(1, now=0.0)
        sizes += [len(j.texts) for j in jobs(out)]
    assert sizes == [1, 4]


def test_chunks_with_other_options_do_not_share_a_job() -> None:
    f = Fleet("batching.batch_timeout_ms=0")
    f.ready(b"w", capacity=1)
    _, out = f.submit(1)
    first = job_to(out, b"w")
    f.submit(1, pooling="mean")
    f.submit(1, pooling="cls")
    out = f.answer(b"w", first)
    assert job_to(out, b"w").pooling == "mean"


# ---- workers: choice, capacity, splitting


def test_a_split_request_spreads_over_workers_and_each_chunk_gets_its_rows() -> None:
    f = Fleet("batching.max_batch_size=32")
    f.ready(b"a", capacity=2)
    f.ready(b"b", capacity=2)
    chunks, out = [], []
    for n in (32, 32, 6):
        item, actions = f.submit(n, now=0.0)
        chunks.append(item)
        out += actions
    assert [len(j.texts) for j in jobs(out, b"a")] == [32] and [len(j.texts) for j in jobs(out, b"b")] == [32]
    out += f.d.wake(0.05)  # the 6 waited for the window: both workers were busy
    sent_jobs = [(a.identity, a.msg) for a in out if isinstance(a, Send) and isinstance(a.msg, Job)]
    assert sorted(len(j.texts) for _, j in sent_jobs) == [6, 32, 32]
    rows: dict[Pending, ChunkResult] = {}
    for identity, job in reversed(sent_jobs):  # answered out of order
        rows |= delivered(f.answer(identity, job))
    for item in chunks:
        assert [r[0] for r in rows[item].vectors] == [len(t) for t in item.texts]
        assert len(rows[item].token_counts) == len(item.texts)


def test_the_least_loaded_worker_gets_the_next_job() -> None:
    f = Fleet()
    f.ready(b"slow", capacity=4)  # registered first: the tie at zero load goes to it
    f.ready(b"fast", capacity=4)
    _, out = f.submit(1)
    assert len(jobs(out, b"slow")) == 1
    for _ in range(3):
        _, out = f.submit(1)
        f.answer(b"fast", job_to(out, b"fast"))
    assert [w.inflight for w in f.view.workers()] == [0, 1]  # fast, slow


def test_a_worker_never_holds_more_than_its_capacity() -> None:
    f = Fleet("batching.batch_timeout_ms=0")
    f.ready(b"w", capacity=2)
    out: list[Action] = []
    for pooling in ("mean", "cls", "last"):  # three jobs that cannot share
        out += f.submit(1, pooling=pooling)[1]
    first, _ = jobs(out, b"w")
    assert [w.inflight for w in f.view.workers()] == [2]
    assert job_to(f.answer(b"w", first), b"w").pooling == "last"


def test_the_queue_refuses_past_max_queue_texts_with_503_and_frees_abandoned_room() -> None:
    f = Fleet("batching.max_queue_texts=4")
    f.ready(b"w", capacity=1)
    f.submit(1)  # running: no longer queued
    queued, _ = f.submit(4)
    refused, out = f.submit(1)
    assert [(a.items, a.failure.reason) for a in out if isinstance(a, Fail)] == [((refused,), Reason.QUEUE_FULL)]
    assert len(out) == 1  # refused with an action like every other outcome, and nothing queued
    error = failed(out)[refused]
    assert isinstance(error, QueueFull) and error.http_status == 503 and error.code == "queue_full"
    assert error.headers == {"Retry-After": "1"} and "batching.max_queue_texts=4" in error.message
    assert f.metric("akidb_embedding_queue_depth") == 4
    queued.future.cancel()  # its caller timed out or left
    f.submit(2)
    assert f.metric("akidb_embedding_abandoned_total") == 4
    assert f.metric("akidb_embedding_queue_depth") == 2


def test_abandoned_chunks_are_skipped_and_counted() -> None:
    f = Fleet("batching.batch_timeout_ms=0")
    f.ready(b"w", capacity=1)
    _, out = f.submit(1)
    running = job_to(out, b"w")
    gone, _ = f.submit(3, text="gone")
    kept, _ = f.submit(2, text="kept")
    gone.future.cancel()
    nxt = job_to(f.answer(b"w", running), b"w")
    assert nxt.texts == kept.texts
    assert f.metric("akidb_embedding_abandoned_total") == 3


def test_a_caller_that_left_mid_job_gets_no_delivery() -> None:
    f = Fleet()
    f.ready(b"w")
    item, out = f.submit(1)
    item.future.cancel()
    assert delivered(f.answer(b"w", job_to(out, b"w"))) == {}


# ---- liveness, requeue, stale replies


def test_a_silent_worker_expires_and_its_job_goes_back_to_the_front() -> None:
    f = Fleet("batching.batch_timeout_ms=0")
    f.ready(b"doomed", capacity=1, now=0.0)
    held, out = f.submit(1, now=0.0, text="held")
    job_to(out, b"doomed")
    later, _ = f.submit(1, now=0.1, text="later")
    assert jobs(f.d.tick(0.2)) == []  # 0.2 s of silence is within liveness
    out = f.d.tick(0.35)
    assert f.view.live_workers(MODEL) == 0 and jobs(out) == []
    assert f.metric("akidb_workers_expired_total") == 1 and f.metric("akidb_jobs_requeued_total") == 1
    out = f.ready(b"spare", capacity=2, now=0.4)
    assert job_to(out, b"spare").texts == held.texts  # first, and alone: it is a suspect now
    nxt = job_to(f.answer(b"spare", job_to(out, b"spare"), now=0.5), b"spare")
    assert nxt.texts == later.texts


def test_heartbeats_go_to_every_worker_and_any_frame_keeps_a_worker_alive() -> None:
    f = Fleet()
    f.ready(b"a", now=0.0)
    f.ready(b"b", now=0.0)
    assert sorted(a.identity for a in f.d.tick(0.1) if isinstance(a.msg, Heartbeat)) == [b"a", b"b"]  # type: ignore[union-attr]
    f.d.on_message(b"a", Heartbeat(), 0.25)
    f.d.tick(0.35)
    assert [w.worker_id for w in f.view.workers()] == ["a"]


def test_disconnect_requeues_at_once_without_an_expiry() -> None:
    f = Fleet()
    f.ready(b"leaving")
    item, _ = f.submit(1)
    f.d.on_message(b"leaving", Disconnect("bye"), 0.1)
    out = f.ready(b"spare", now=0.2)
    assert job_to(out, b"spare").texts == item.texts
    assert f.metric("akidb_workers_expired_total") == 0


def test_a_stale_reply_after_a_requeue_is_dropped_not_delivered_twice() -> None:
    f = Fleet()
    f.ready(b"slow", now=0.0)
    item, out = f.submit(1)
    old = job_to(out, b"slow")
    f.d.tick(0.5)  # slow expired, the job requeued
    new = job_to(f.ready(b"spare", now=0.5), b"spare")
    assert delivered(f.answer(b"spare", new, now=0.6)).keys() == {item}
    f.ready(b"slow", now=0.7)  # it was only slow: back again
    out = f.answer(b"slow", old, now=0.8)
    assert out == [] and f.view.live_workers(MODEL) == 2  # dropped as stale, not a violation


def test_a_worker_that_registers_again_loses_its_jobs_without_blame() -> None:
    f = Fleet()
    f.ready(b"w")
    item, out = f.submit(1)
    old = job_to(out, b"w")
    out = f.ready(b"w", now=1.0)  # reconnected: what it held is gone
    again = job_to(out, b"w")
    assert again.job_id != old.job_id and not item.suspect
    assert f.answer(b"w", old, now=1.1) == []  # the old job's late reply is stale
    assert delivered(f.answer(b"w", again, now=1.2)).keys() == {item}


def test_a_reply_for_a_previous_gateways_job_is_stale() -> None:
    f = Fleet()
    f.ready(b"w")
    stray = Result(7, np.zeros((1, 4), dtype=np.float32), (1,), (1,), 1.0)  # an id this gateway never issued
    assert f.d.on_message(b"w", stray, 0.1) == []
    assert f.view.live_workers(MODEL) == 1 and f.metric("akidb_protocol_violations_total") == 0


def test_an_unknown_worker_is_asked_to_register_again() -> None:
    f = Fleet()
    out = f.d.on_message(b"stranger", Heartbeat(), 0.0)
    assert sent(out, b"stranger") == [Disconnect("unknown worker; send READY")]
    assert f.d.on_message(b"stranger", Disconnect("bye"), 0.0) == []  # no answer to a goodbye
    f.ready(b"stranger")
    assert f.view.live_workers(MODEL) == 1


def test_closing_fails_every_caller_and_says_disconnect_to_every_worker() -> None:
    f = Fleet("batching.batch_timeout_ms=0")
    f.ready(b"w", capacity=1)
    running, _ = f.submit(1)
    queued, _ = f.submit(1, pooling="cls")
    out = f.d.close()
    assert sent(out, b"w") == [Disconnect("gateway shutting down")]
    errors = failed(out)
    assert set(errors) == {running, queued} and all(isinstance(e, NoWorker) for e in errors.values())
    assert f.view.worker_count() == 0


# ---- worker errors


@pytest.mark.parametrize(
    ("code", "error", "status", "api_code"),
    [
        (ErrorCode.DEADLINE_EXCEEDED, Timeout, 504, "timeout"),
        (ErrorCode.INVALID_JOB, InvalidInput, 400, "invalid_input"),
        (ErrorCode.INTERNAL, WorkerFailed, 502, "worker_error"),
        (ErrorCode.UNKNOWN_MODEL, WorkerFailed, 502, "worker_error"),
    ],
)
def test_a_worker_error_becomes_an_api_error(code: str, error: type, status: int, api_code: str) -> None:
    f = Fleet()
    f.ready(b"w")
    item, out = f.submit(1)
    out = f.d.on_message(b"w", Error(job_to(out, b"w").job_id, code, "out of memory"), 0.1)
    got = failed(out)[item]
    assert type(got) is error and got.http_status == status and got.code == api_code
    assert "out of memory" in got.message
    assert f.view.live_workers(MODEL) == 1  # the worker said so itself: it stays


def test_an_internal_error_is_not_retried() -> None:
    f = Fleet()
    f.ready(b"a")
    f.ready(b"b")
    item, out = f.submit(1)
    out = f.d.on_message(b"a", Error(job_to(out, b"a").job_id, ErrorCode.INTERNAL, "boom"), 0.1)
    assert failed(out)[item].code == "worker_error" and jobs(out) == []


def test_a_result_with_the_wrong_row_count_is_a_502() -> None:
    f = Fleet()
    f.ready(b"w")
    item, out = f.submit(2)
    job = job_to(out, b"w")
    short = Result(job.job_id, np.zeros((1, 4), dtype=np.float32), (1,), (1,), 1.0)
    got = failed(f.d.on_message(b"w", short, 0.1))[item]
    assert isinstance(got, WorkerFailed) and got.http_status == 502


# ---- poison jobs


def _die(f: Fleet, identity: bytes, how: str, now: float) -> list[Action]:
    if how == "expiry":
        for w in f.d.registry.workers.values():
            if w.identity != identity:
                w.last_seen = now  # the others stay alive
        return f.d.tick(now)
    if how == "unreachable":
        return f.d.on_send_failed(identity, Heartbeat(), now)
    return f.d.on_message(identity, Disconnect("worker shutting down"), now)


@pytest.mark.parametrize("how", ["expiry", "unreachable", "disconnect"])
def test_a_job_whose_workers_die_twice_fails_502_worker_failed_and_is_not_sent_again(how: str) -> None:
    f = Fleet("batching.max_batch_size=2", "batching.batch_timeout_ms=5000")
    f.ready(b"a", capacity=2, now=0.0)
    filler, _ = f.submit(1, text="filler")  # a's first job
    poison, _ = f.submit(1, text="POISON")
    innocent, out = f.submit(1, text="innocent")
    assert job_to(out, b"a").texts == ("POISON0", "innocent0")  # the poison shares a job with a neighbour
    for name in (b"b", b"c", b"d"):
        f.ready(name, capacity=2, now=0.9)
    out = _die(f, b"a", how, 1.0)
    # All three chunks are suspects now: each rides alone, on its own idle worker, oldest first.
    assert [job_to(out, w).texts for w in (b"b", b"c", b"d")] == [filler.texts, poison.texts, innocent.texts]
    assert not failed(out)
    out = _die(f, b"c", how, 2.0)
    error = failed(out)[poison]
    assert list(failed(out)) == [poison]
    assert isinstance(error, PoisonJob) and error.code == "worker_failed" and error.http_status == 502
    assert jobs(out) == [] and not f.d.batcher.queued_texts  # not sent a third time
    assert f.metric("akidb_poison_jobs_total") == 1
    for w in (b"b", b"d"):  # its neighbours, suspects once, still succeed
        (flight,) = [j for j in f.d.jobs.values() if j.identity == w]
        texts = tuple(t for i in flight.items for t in i.texts)
        got = delivered(f.answer(w, Job(flight.job_id, MODEL, texts, "mean", True, 1000), 2.1))
        assert list(got) == flight.items


def test_a_send_that_fails_does_not_make_its_job_a_suspect() -> None:
    f = Fleet()
    f.ready(b"gone")
    item, out = f.submit(1)
    job = job_to(out, b"gone")
    f.d.on_send_failed(b"gone", job, 0.0)
    assert not item.suspect and f.metric("akidb_jobs_requeued_total") == 1


def test_a_suspect_waits_for_an_idle_worker_and_keeps_it_to_itself() -> None:
    f = Fleet("batching.batch_timeout_ms=0")
    f.ready(b"a", capacity=2)
    item, _ = f.submit(1, text="suspect")
    f.d.on_message(b"a", Disconnect("bye"), 0.1)
    f.ready(b"busy", capacity=2, now=0.2)  # the suspect takes this idle worker
    assert f.d.registry.workers[b"busy"].solo
    other, out = f.submit(1, text="other")
    assert jobs(out) == []  # busy is reserved for the suspect
    out = f.ready(b"free", capacity=2, now=0.3)
    assert job_to(out, b"free").texts == other.texts
    assert item.suspect and not other.suspect


# ---- protocol violations


def _held_job(f: Fleet) -> Job:
    f.ready(b"w")
    f.ready(b"other")
    _, out = f.submit(1)
    return job_to(out, b"w")


VIOLATIONS = {
    "a JOB": lambda job: encode(job),
    "a RESULT for another worker's job": lambda job: encode(
        Result(job.job_id + 1, np.zeros((1, 4), np.float32), (1,), (1,), 1.0)
    ),
    "an ERROR for another worker's job": lambda job: encode(Error(job.job_id + 1, ErrorCode.INTERNAL, "?")),
    "a wrong protocol version": lambda job: [
        MAGIC + bytes((PROTOCOL_VERSION + 1, MsgType.HEARTBEAT)),
        msgpack.packb({}),
    ],
    "garbage": lambda job: [b"garbage"],
    "a RESULT that does not decode": lambda job: [
        MAGIC + bytes((PROTOCOL_VERSION, MsgType.RESULT)),
        msgpack.packb({"job_id": 1}),
    ],
    "a READY without capacity": lambda job: encode(Ready("w", (INFO,), "cpu", 0)),
}


@pytest.mark.parametrize("what", list(VIOLATIONS))
def test_a_peer_that_breaks_the_protocol_is_told_disconnect_and_forgotten(what: str) -> None:
    f = Fleet()
    job = _held_job(f)
    if "another worker" in what:  # make job_id + 1 a job that `other` holds
        _, out = f.submit(1, pooling="cls")
        assert job_to(out, b"other").job_id == job.job_id + 1
    with capture_logs() as logs:
        out = f.d.on_frames(b"w", VIOLATIONS[what](job), 1.0)
    (bye,) = sent(out, b"w")
    assert isinstance(bye, Disconnect) and bye.reason.startswith("protocol violation")
    assert [w.worker_id for w in f.view.workers()] == ["other"]
    assert job_to(out, b"other").texts == job.texts  # its job went to another, with no blame
    assert f.metric("akidb_protocol_violations_total") == 1
    assert any(e["event"] == "protocol_violation" for e in logs)


def test_a_second_reply_for_one_job_is_a_violation() -> None:
    f = Fleet()
    job = _held_job(f)
    f.answer(b"w", job, 0.1)
    out = f.answer(b"w", job, 0.2)
    assert isinstance(sent(out, b"w")[0], Disconnect)


def test_malformed_frames_from_strangers_are_dropped_and_counted() -> None:
    f = Fleet()
    for frames in VIOLATIONS.values():
        if frames is not VIOLATIONS["a READY without capacity"]:
            assert sent(f.d.on_frames(b"stranger", frames(Job(1, MODEL, ("x",), "mean", True, 1)), 0.0)) in (
                [],
                [Disconnect("unknown worker; send READY")],
            )
    assert f.metric("akidb_protocol_frames_dropped_total") == 3  # the three that do not decode
    assert f.metric("akidb_protocol_violations_total") == 0


# ---- duplicate worker ids and the view


def test_two_processes_with_one_worker_id_both_serve_and_the_clash_is_logged() -> None:
    f = Fleet("batching.batch_timeout_ms=0")
    f.ready(b"twin/1/aa", worker_id="mac-w0", host="mac", pid=1)
    with capture_logs() as logs:
        f.ready(b"twin/2/bb", worker_id="mac-w0", host="mac", pid=2)
    (clash,) = [e for e in logs if e["event"] == "worker_id_clash"]
    assert (clash["host"], clash["pid"], clash["other_host"], clash["other_pid"]) == ("mac", 2, "mac", 1)
    assert f.view.live_workers(MODEL) == 2 and f.view.worker_count() == 2
    out = f.submit(1)[1] + f.submit(1)[1]
    assert {a.identity for a in out if isinstance(a, Send)} == {b"twin/1/aa", b"twin/2/bb"}
    with capture_logs() as logs:
        f.ready(b"twin/1/aa", worker_id="mac-w0", host="mac", pid=1, now=1.0)  # itself again: no clash with itself
    assert [e["other_pid"] for e in logs if e["event"] == "worker_id_clash"] == [2]


def test_the_view_keeps_each_workers_own_facts() -> None:
    f = Fleet()
    f.d.on_message(b"a", Ready("a", (INFO,), "cpu", 2, "host-a", 11), 0.0)
    metal = ModelInfo(MODEL, 4, 16, "mean", ("minilm",), "mlx", "metal", "bf16")
    f.d.on_message(b"b", Ready("b", (metal,), "metal", 4, "host-b", 22), 0.0)
    a, b = f.view.workers()
    assert (a.worker_id, a.host, a.pid, a.backend, a.device, a.precision, a.capacity) == (
        "a",
        "host-a",
        11,
        "fake",
        "cpu",
        "f32",
        2,
    )
    assert (b.backend, b.device, b.precision, b.models) == ("mlx", "metal", "bf16", (MODEL,))
    assert [m.name for m in f.view.models()] == [MODEL]
    # The model's facts are its first announcement's: a later READY does not rewrite them (issue 10).
    assert f.view.resolve("MiniLM") == MODEL and f.view.model_info("minilm") == INFO
    assert f.view.model_info("nope") is None and f.view.live_workers(MODEL) == 2


# ---- one worker cannot rewrite another's model (issue 10)


@pytest.mark.parametrize(
    ("dimension", "backend", "refused"),
    [
        (4, "mlx", False),  # same model, same dimension, another engine: serves beside the first
        (384, "fake", True),  # same name, another dimension: would corrupt collections
    ],
)
def test_a_ready_with_a_known_model_is_taken_only_with_its_dimension(
    dimension: int, backend: str, refused: bool
) -> None:
    f = Fleet()
    f.ready(b"first")
    other = ModelInfo(MODEL, dimension, 16, "mean", ("minilm",), backend, "metal", "bf16")
    with capture_logs() as logs:
        out = f.d.on_message(b"second", Ready("second", (other,), "metal", 2, "host-b", 22), 1.0)
    assert f.view.model_info(MODEL) == INFO  # the first announcement's facts stand either way
    if refused:
        (bye,) = sent(out, b"second")
        assert isinstance(bye, Disconnect) and bye.reason.startswith("refused: ")
        assert "dimension 4" in bye.reason and "384" in bye.reason
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["worker_refused_model"]
        assert f.view.live_workers(MODEL) == 1 and f.metric("akidb_workers_refused_total") == 1
        # It answers the DISCONNECT with READY (an older worker would): dropped, not a loop.
        assert f.d.on_message(b"second", Ready("second", (other,), "metal", 2), 2.0) == []
    else:
        assert sent(out, b"second") == []
        assert [(w.worker_id, w.backend) for w in f.view.serving(MODEL)] == [("first", "fake"), ("second", "mlx")]


def test_a_newcomer_cannot_take_another_models_name_as_its_alias() -> None:
    f = Fleet()
    f.ready(b"first")
    squatter = ModelInfo("other-model", 8, 16, "mean", (MODEL, "minilm"), "fake", "cpu", "f32")
    f.d.on_message(b"rogue", Ready("rogue", (squatter,), "cpu", 2), 0.0)
    assert f.view.resolve("minilm") == MODEL and f.view.resolve(MODEL) == MODEL
    assert f.view.resolve("other-model") == "other-model"


def test_a_revoked_worker_is_forgotten_and_its_jobs_go_to_another() -> None:
    f = Fleet()
    f.ready(b"a")
    item, out = f.submit(1)
    job_to(out, b"a")
    f.ready(b"b")
    out = f.d.revoke(b"a", 1.0)
    assert f.view.live_workers(MODEL) == 1
    assert job_to(out, b"b").texts == item.texts  # requeued without blame, sent to the other
    assert f.d.revoke(b"a", 2.0) == []  # twice is nothing
