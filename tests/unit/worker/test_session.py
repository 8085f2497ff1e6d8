"""The worker's protocol rules, one table each, on a fake clock: no sockets, no sleeps."""

from __future__ import annotations

import numpy as np
import pytest

from shared.protocol import REFUSED, Disconnect, Error, Heartbeat, Job, ModelInfo, Ready, Result
from worker.session import (
    GOODBYE,
    MAX_BACKOFF_S,
    Abandon,
    Action,
    Close,
    Deliver,
    Dropped,
    Forward,
    Lost,
    Open,
    Refused,
    Send,
    Session,
    State,
    Timing,
)

INTERVAL = 1.0
LIVENESS = 3
READY = Ready("w0", (ModelInfo("m", 4, 16, "mean"),), "cpu", capacity=3, host="h", pid=1)
BEAT = Send(Heartbeat())
FRAMES = [b"header", b"body"]


def job(job_id: int) -> Job:
    return Job(job_id, "m", ("a",), "mean", True, 1000)


def live(now: float = 0.0) -> Session:
    s = Session(READY, Timing(INTERVAL, LIVENESS))
    s.connect(now)
    return s


def silent_until_lost(s: Session, start: float) -> tuple[float, list[Action]]:
    """Tick once per interval, hearing nothing, until the link is lost: (when, the losing tick's actions)."""
    t = start
    while True:
        t += INTERVAL
        out = s.tick(t)
        if s.state is State.BACKOFF:
            return t, out


# ---- READY and the capacity it announces


def test_connect_opens_a_socket_and_announces_the_worker_with_its_capacity() -> None:
    s = Session(READY, Timing(INTERVAL, LIVENESS))
    assert s.deadline() is None and s.state is State.IDLE
    assert s.connect(0.0) == [Open(), Send(READY)]
    assert s.readies == 1 and s.live and s.deadline() == INTERVAL
    (sent,) = [a.msg for a in s.connect(5.0) if isinstance(a, Send)]
    assert isinstance(sent, Ready) and sent.capacity == 3


# ---- heartbeats both ways


@pytest.mark.parametrize(
    ("now", "expected"),
    [(0.5, []), (0.999, []), (1.0, [BEAT]), (1.7, [BEAT])],
)
def test_a_heartbeat_goes_out_once_an_interval_has_passed(now: float, expected: list[Action]) -> None:
    s = live()
    s.receive(Heartbeat(), 0.1)
    assert s.tick(now) == expected


def test_the_next_heartbeat_is_one_interval_after_the_last() -> None:
    s = live()
    assert s.tick(1.0) == [BEAT] and s.deadline() == 2.0
    assert s.tick(1.5) == [] and s.tick(2.0) == [BEAT]


@pytest.mark.parametrize(
    "sign_of_life",
    [
        lambda s, t: s.receive(Heartbeat(), t),
        lambda s, t: s.receive(job(7), t),
        lambda s, t: s.receive(Disconnect("unknown worker"), t),
        lambda s, t: s.noise(t),  # frames that did not decode still come from a live gateway
    ],
    ids=["heartbeat", "job", "disconnect", "undecodable"],
)
def test_anything_from_the_gateway_restores_every_life(sign_of_life) -> None:  # type: ignore[no-untyped-def]
    s = live()
    for t in (1.0, 2.0):  # two silent intervals: one life left
        assert s.tick(t) == [BEAT]
    sign_of_life(s, 2.5)
    for t in (3.0, 4.0, 5.0):  # the interval with the sign of life costs nothing, then three more lives
        assert s.tick(t) == [BEAT]
        assert s.live
    assert isinstance(s.tick(6.0)[-1], Lost)


# ---- the liveness countdown


@pytest.mark.parametrize("liveness", [1, 2, 3, 5])
def test_the_link_is_lost_after_liveness_silent_intervals(liveness: int) -> None:
    s = Session(READY, Timing(INTERVAL, liveness))
    s.connect(0.0)
    beats = 0
    t = 0.0
    while True:
        t += INTERVAL
        out = s.tick(t)
        if out != [BEAT]:
            break
        beats += 1
    assert beats == liveness - 1 and t == liveness * INTERVAL
    assert out == [Lost(INTERVAL, "gateway silent")] and s.state is State.BACKOFF


def test_a_lost_link_abandons_the_jobs_its_gateway_sent() -> None:
    s = live()
    s.receive(job(1), 0.1)
    s.receive(job(2), 0.2)
    assert s.result(1, FRAMES) == [Forward(FRAMES)]
    _, out = silent_until_lost(s, 0.2)
    assert out == [Abandon((2,)), Lost(INTERVAL, "gateway silent")]
    assert isinstance(s.result(2, FRAMES)[0], Dropped)  # finished too late: that gateway has requeued it


def test_a_refused_handshake_loses_the_link_at_once() -> None:
    s = live()
    assert s.handshake_failed(0.3) == [Lost(INTERVAL, "handshake refused")]
    assert s.handshake_failed(0.4) == []  # already lost


# ---- the doubling backoff


def test_the_backoff_doubles_from_one_interval_up_to_the_cap_while_nothing_is_heard() -> None:
    s = live()
    t, waits = 0.0, []
    for _ in range(9):
        t, out = silent_until_lost(s, t)
        (lost,) = [a for a in out if isinstance(a, Lost)]
        waits.append(lost.retry_in_s)
        assert s.deadline() == t + lost.retry_in_s
        t += lost.retry_in_s
        assert s.tick(t) == [Open(), Send(READY)]  # reconnect, announcing again
    assert waits == [1, 2, 4, 8, 16, 32, 32, 32, 32]
    assert max(waits) == MAX_BACKOFF_S and s.readies == 10


@pytest.mark.parametrize(("early", "expected"), [(0.5, []), (0.999, [])])
def test_no_reconnect_before_the_backoff_is_over(early: float, expected: list[Action]) -> None:
    s = live()
    t, _ = silent_until_lost(s, 0.0)
    assert s.tick(t + early) == expected and s.state is State.BACKOFF
    assert s.tick(t + 1.0) == [Open(), Send(READY)]


def test_a_link_that_heard_the_gateway_starts_the_backoff_afresh() -> None:
    s = live()
    t = 0.0
    for _ in range(3):  # 1, 2, 4
        t, out = silent_until_lost(s, t)
        t += out[-1].retry_in_s  # type: ignore[union-attr]
        s.tick(t)
    s.receive(Heartbeat(), t + 0.1)  # this link worked
    t, out = silent_until_lost(s, t + 0.1)
    assert out == [Lost(INTERVAL, "gateway silent")]


# ---- DISCONNECT and REFUSED


def test_disconnect_abandons_the_gateways_jobs_and_announces_the_worker_again() -> None:
    s = live()
    s.receive(job(5), 0.1)
    out = s.receive(Disconnect("unknown worker; send READY"), 0.2)
    assert out == [Abandon((5,)), Send(READY)]
    assert s.readies == 2 and s.live and s.disconnects == ["unknown worker; send READY"]
    assert isinstance(s.result(5, FRAMES)[0], Dropped)  # the new registration knows nothing of job 5
    assert s.receive(Disconnect("gateway shutting down"), 0.3) == [Send(READY)]  # nothing owed, nothing abandoned


def test_refused_ends_the_session_for_good() -> None:
    s = live()
    s.receive(job(9), 0.1)
    out = s.receive(Disconnect(f"{REFUSED}model m is served with dimension 384"), 0.2)
    assert out == [Abandon((9,)), Refused("model m is served with dimension 384")]
    assert s.state is State.REFUSED and s.refused_reason == "model m is served with dimension 384"
    assert s.deadline() is None
    assert s.tick(100.0) == [] and s.connect(100.0) == [] and s.stop(100.0) == []  # never READY again
    assert s.readies == 1


# ---- jobs and results


@pytest.mark.parametrize(
    ("owed", "answered", "expected"),
    [
        ((1,), 1, Forward),  # the answer to a job this gateway sent
        ((1,), 2, Dropped),  # a job it never sent
        ((), 1, Dropped),
    ],
)
def test_a_result_goes_back_only_for_a_job_the_gateway_waits_for(owed, answered, expected) -> None:  # type: ignore[no-untyped-def]
    s = live()
    for job_id in owed:
        assert s.receive(job(job_id), 0.1) == [Deliver(job(job_id))]
    (action,) = s.result(answered, FRAMES)
    assert isinstance(action, expected)


def test_a_job_is_answered_once() -> None:
    s = live()
    s.receive(job(1), 0.1)
    assert s.result(1, FRAMES) == [Forward(FRAMES)]
    assert isinstance(s.result(1, FRAMES)[0], Dropped)


@pytest.mark.parametrize(
    "msg",
    [READY, Result(1, np.zeros((1, 4), np.float32), (1,), (1,), 1.0), Error(1, "internal", "x")],
    ids=["ready", "result", "error"],
)
def test_a_message_only_a_worker_sends_is_dropped(msg) -> None:  # type: ignore[no-untyped-def]
    s = live()
    (action,) = s.receive(msg, 0.1)
    assert isinstance(action, Dropped) and type(msg).__name__ in action.reason
    assert s.live


def test_messages_after_the_link_closed_are_dropped() -> None:
    s = live()
    silent_until_lost(s, 0.0)
    (action,) = s.receive(job(3), 10.0)
    assert isinstance(action, Dropped)


# ---- stopping


def test_stop_says_goodbye_on_a_live_link_and_nothing_on_a_lost_one() -> None:
    s = live()
    assert s.stop(1.0) == [Send(Disconnect(GOODBYE)), Close()]
    assert s.state is State.CLOSED and s.tick(50.0) == [] and s.connect(50.0) == []
    lost = live()
    silent_until_lost(lost, 0.0)
    assert lost.stop(10.0) == [] and lost.deadline() is None
