"""The worker's side of one gateway link, as a sans-IO state machine: events in, actions out, time passed in.

`Session` owns every protocol rule the worker follows: READY (with the capacity it announces),
heartbeats both ways, the liveness countdown, the doubling backoff, DISCONNECT and REFUSED, and
which jobs this gateway still expects an answer to. It never touches a socket or a clock:
`worker/connection.py` feeds it decoded messages and `now` (monotonic seconds) and carries out
the actions it returns, in order. So its tests are tables run on a fake clock, and the fake
worker in `tests/support` obeys the same rules by running the same object.

Rules (the ZeroMQ guide's Paranoid Pirate worker):
- `connect` opens a socket and sends READY. Any message from the gateway is a sign of life.
- Every `interval_s` the session sends HEARTBEAT; an interval with nothing heard costs one of
  `liveness` lives. At zero, or when the CURVE handshake fails, the link is lost: the socket
  closes, the jobs this gateway sent are abandoned, and `connect` comes again after a backoff of
  one interval, doubling up to `MAX_BACKOFF_S`, and back to one interval after a link that heard
  the gateway at least once.
- DISCONNECT ("I do not know you") abandons this gateway's jobs and sends READY again.
  A DISCONNECT whose reason starts with `REFUSED` ends the session for good.
- A result goes back only for a job this gateway sent and has not had an answer to since its
  last READY; anything else would be a reply to a gateway that forgot the job.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from shared.protocol import REFUSED, Disconnect, Heartbeat, Job, Message, Ready

MAX_BACKOFF_S = 32.0
GOODBYE = "worker shutting down"


@dataclass(frozen=True)
class Timing:
    """Heartbeat period and how many silent periods make the gateway count as gone."""

    interval_s: float
    liveness: int


# ---- actions: what the session asks its connection to do


@dataclass(frozen=True, slots=True)
class Open:
    """Open a fresh socket to the gateway (any old one is closed first)."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send this message to the gateway."""

    msg: Message


@dataclass(frozen=True, slots=True)
class Forward:
    """Send these already-encoded frames (a result from the compute loop) to the gateway."""

    frames: list[Any]


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand this job to the compute loop."""

    job: Job


@dataclass(frozen=True, slots=True)
class Abandon:
    """The gateway no longer waits for these jobs: skip the ones not started."""

    job_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Lost:
    """The link is gone: close the socket; `connect` again in `retry_in_s`."""

    retry_in_s: float
    why: str


@dataclass(frozen=True, slots=True)
class Refused:
    """The gateway turned this worker away for good: close the socket and never come back."""

    reason: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the socket: the worker is stopping."""


@dataclass(frozen=True, slots=True)
class Dropped:
    """Something was ignored; the connection logs why."""

    reason: str


Action = Open | Send | Forward | Deliver | Abandon | Lost | Refused | Close | Dropped


class State(enum.Enum):
    IDLE = "idle"  # before the first connect
    LIVE = "live"  # a socket is open and READY was sent
    BACKOFF = "backoff"  # lost; waiting to connect again
    REFUSED = "refused"  # turned away for good
    CLOSED = "closed"  # the worker stopped


class Session:
    """One gateway as this worker sees it. Every method takes `now` and returns the actions to carry out."""

    def __init__(self, ready: Ready, timing: Timing) -> None:
        self.ready = ready  # what READY announces, capacity included
        self.timing = timing
        self.state = State.IDLE
        self.readies = 0  # READYs sent: 1 + reconnects + re-registrations
        self.disconnects: list[str] = []  # reasons of the gateway's DISCONNECTs, for logs and tests
        self.refused_reason = ""
        self._lives = timing.liveness
        self._heard = False  # anything from the gateway in the current interval
        self._heard_any = False  # anything from the gateway since the socket opened
        self._next_beat = 0.0
        self._retry_at = 0.0
        self._backoff = timing.interval_s
        self._owed: set[int] = set()  # job ids this gateway waits on

    @property
    def live(self) -> bool:
        return self.state is State.LIVE

    def deadline(self) -> float | None:
        """When `tick` must next be called (None: nothing is due)."""
        if self.state is State.LIVE:
            return self._next_beat
        if self.state is State.BACKOFF:
            return self._retry_at
        return None

    def connect(self, now: float) -> list[Action]:
        """Open the link and announce this worker."""
        if self.state in (State.REFUSED, State.CLOSED):
            return []
        self.state = State.LIVE
        self._lives = self.timing.liveness
        self._heard = self._heard_any = False
        self._next_beat = now + self.timing.interval_s
        return [Open(), *self._register()]

    def receive(self, msg: Message, now: float) -> list[Action]:
        """A decoded message from the gateway."""
        if self.state is not State.LIVE:
            return [Dropped(f"{type(msg).__name__} after the link closed")]
        self._hear()
        if isinstance(msg, Job):
            self._owed.add(msg.job_id)
            return [Deliver(msg)]
        if isinstance(msg, Heartbeat):
            return []
        if isinstance(msg, Disconnect):
            self.disconnects.append(msg.reason)
            if msg.reason.startswith(REFUSED):
                self.state = State.REFUSED
                self.refused_reason = msg.reason.removeprefix(REFUSED)
                return [*self._abandon(), Refused(self.refused_reason)]
            # The gateway does not know us (it restarted, or expired us): what it sent before is forgotten.
            return [*self._abandon(), *self._register()]
        return [Dropped(f"unexpected {type(msg).__name__} from gateway")]

    def noise(self, now: float) -> list[Action]:
        """Frames from the gateway that did not decode: still a sign of life."""
        if self.state is State.LIVE:
            self._hear()
        return []

    def handshake_failed(self, now: float) -> list[Action]:
        """The gateway refused the CURVE handshake: libzmq will not retry it, so this link is lost."""
        if self.state is not State.LIVE:
            return []
        return self._lose(now, "handshake refused")

    def tick(self, now: float) -> list[Action]:
        """Time passed: heartbeat, count down liveness, or reconnect after the backoff."""
        if self.state is State.BACKOFF and now >= self._retry_at:
            return self.connect(now)
        if self.state is not State.LIVE or now < self._next_beat:
            return []
        self._next_beat = now + self.timing.interval_s
        if not self._heard:
            self._lives -= 1
            if self._lives <= 0:
                return self._lose(now, "gateway silent")
        self._heard = False
        return [Send(Heartbeat())]

    def result(self, job_id: int, frames: list[Any]) -> list[Action]:
        """The compute loop's answer to `job_id`: forward it if this gateway still waits for it."""
        if self.state is not State.LIVE or job_id not in self._owed:
            return [Dropped(f"result for job {job_id}, which this gateway no longer waits for")]
        self._owed.discard(job_id)
        return [Forward(frames)]

    def stop(self, now: float) -> list[Action]:
        """The worker is stopping: say goodbye (its DISCONNECT makes the gateway requeue at once)."""
        was_live = self.state is State.LIVE
        if self.state in (State.REFUSED, State.CLOSED):
            return []
        self.state = State.CLOSED
        self._owed.clear()
        return [Send(Disconnect(GOODBYE)), Close()] if was_live else []

    # ---- helpers

    def _hear(self) -> None:
        self._lives = self.timing.liveness
        self._heard = self._heard_any = True

    def _register(self) -> list[Action]:
        self.readies += 1
        return [Send(self.ready)]

    def _abandon(self) -> list[Action]:
        owed, self._owed = tuple(sorted(self._owed)), set()
        return [Abandon(owed)] if owed else []

    def _lose(self, now: float, why: str) -> list[Action]:
        if self._heard_any:
            self._backoff = self.timing.interval_s  # the link worked: start the backoff afresh
        wait = self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
        self.state = State.BACKOFF
        self._retry_at = now + wait
        return [*self._abandon(), Lost(wait, why)]
