"""The soak's fault schedule (a plain function of the run's length) and the faults themselves.

Faults come round in a fixed order, one every `FAULT_EVERY_S` after a quiet first stretch, so every
run of at least five minutes meets each kind once, and an hour-long run meets each three times:

  worker_kill     kill -9 the worker; it is started again a second later, as supervisord would
  worker_stop     SIGSTOP the worker for 5 s, then SIGCONT
  gateway_kill    kill -9 the gateway and start it again (its worker reconnects)
  disk_full       fill the data dir's disk to the last byte, hold it, free it

Each fault's window runs from its injection until the stack is whole again (the worker back in
/models, /ready answering, writes stored again): requests overlapping a window are the fault's.
"""

from __future__ import annotations

import errno
import os
import signal
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Stack

KINDS = ("worker_kill", "worker_stop", "gateway_kill", "disk_full")
QUIET_S = 45.0  # before the first fault: the pre-fault baseline of the first one
FAULT_EVERY_S = 60.0  # between two faults in a run of up to 5 minutes; longer runs stretch it (see schedule)
STOP_S = 5.0
DISK_FULL_S = 20.0
RESTART_WORKER_AFTER_S = 1.0
WHOLE_WITHIN_S = 120.0  # the longest a fault's recovery is waited for before the run says so


@dataclass(frozen=True)
class Planned:
    at_s: float  # from the start of the load
    kind: str


def schedule(duration_s: float, every_s: float = FAULT_EVERY_S, quiet_s: float = QUIET_S) -> list[Planned]:
    """Faults for a run of `duration_s`: each kind in turn, at least `every_s` apart, none in the last 15 %.

    Up to 5 minutes one fault a minute; an hour holds 12 (each kind three times), every ~4.5 minutes.
    """
    last = duration_s * 0.85
    if last <= quiet_s:
        return []
    rounds = max(1, int(duration_s // 1200))  # each kind once per 20 minutes, at least once
    count = len(KINDS) * rounds
    every = max(every_s, (last - quiet_s) / count)
    out = []
    for i in range(count):
        at = quiet_s + i * every
        if at > last:
            break
        out.append(Planned(at, KINDS[i % len(KINDS)]))
    return out


@dataclass
class Window:
    """One injected fault: when it began, and when the stack was whole again."""

    kind: str
    start: float  # time.time()
    end: float | None = None
    note: str = ""

    def to_dict(self, t0: float) -> dict[str, object]:
        end = self.end if self.end is not None else float("nan")
        return {"kind": self.kind, "start_s": round(self.start - t0, 2), "end_s": round(end - t0, 2), "note": self.note}


class Faults:
    """Injects faults into a running Stack whose data dir is `disk` (a file system of its own)."""

    def __init__(self, stack: Stack, disk: Path | None) -> None:
        self.stack = stack
        self.disk = disk

    def inject(self, kind: str) -> Window:
        """Run one fault to its end (blocking: call it from a thread) and return its window."""
        window = Window(kind, time.time())
        if kind == "disk_full" and self.disk is None:
            window.end, window.note = window.start, "skipped: the data dir is not on a disk of its own (run as root)"
            return window
        getattr(self, kind)(window)
        return window

    def worker_kill(self, window: Window) -> None:
        self.stack.procs[1].kill()
        self.stack.procs[1].wait()
        time.sleep(RESTART_WORKER_AFTER_S)
        self.stack.restart_worker(0)
        self._wait_whole(window)

    def worker_stop(self, window: Window) -> None:
        pid = self.stack.procs[1].pid
        os.kill(pid, signal.SIGSTOP)
        time.sleep(STOP_S)
        os.kill(pid, signal.SIGCONT)
        self._wait_whole(window)

    def gateway_kill(self, window: Window) -> None:
        self.stack.restart_gateway()
        self._wait_whole(window)

    def disk_full(self, window: Window) -> None:
        assert self.disk is not None
        filler = self.disk / "soak-filler"
        window.note = f"filled {fill(filler) / 2**20:.1f} MiB"
        time.sleep(DISK_FULL_S)
        filler.unlink()
        self._wait_whole(window, writable=True)

    def _wait_whole(self, window: Window, writable: bool = False) -> None:
        """Until the worker is back and /ready says ready (and, if asked, that writes are stored again)."""
        end = time.time() + WHOLE_WITHIN_S
        while time.time() < end:
            if ready(self.stack.url, writable):
                window.end = time.time()
                return
            time.sleep(0.1)
        window.end, window.note = time.time(), (window.note + f"; not whole after {WHOLE_WITHIN_S:.0f} s").lstrip("; ")


def ready(url: str, writable: bool) -> bool:
    """Whether /ready is 200 (a worker serves the default model) and, if asked, storage is writable."""
    import json

    try:
        with urllib.request.urlopen(url + "/ready", timeout=2) as resp:
            body = json.load(resp)
    except OSError:
        return False
    return not writable or bool(body.get("storage", {}).get("writable", True))


def fill(path: Path) -> int:
    """Write `path` until its disk refuses another byte; the bytes written."""
    written, chunk = 0, 1 << 20
    data = b"\0" * chunk
    with path.open("wb", buffering=0) as out:
        while chunk:
            try:
                written += out.write(data[:chunk])
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                chunk //= 2
    return written
