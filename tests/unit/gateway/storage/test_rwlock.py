"""The readers-writer lock's non-waiting shared hold, which lets searches run on the event loop."""

from __future__ import annotations

import threading
import time

from gateway.storage.rwlock import RWLock


def test_try_shared_holds_beside_readers_and_never_waits_for_a_writer() -> None:
    lock = RWLock()
    with lock.shared(), lock.try_shared() as held:
        assert held
    with lock.exclusive(), lock.try_shared() as held:
        assert not held
    with lock.try_shared() as held:
        assert held


def test_try_shared_declines_while_a_writer_waits_and_releases_what_it_took() -> None:
    lock = RWLock()
    got_it = threading.Event()

    def writer() -> None:
        with lock.exclusive():
            got_it.set()

    with lock.shared():
        t = threading.Thread(target=writer)
        t.start()
        deadline = time.monotonic() + 10
        while not lock._writers_waiting and time.monotonic() < deadline:
            time.sleep(0.001)
        with lock.try_shared() as held:  # a waiting writer holds new readers back, this one too
            assert not held
    t.join(timeout=10)
    assert got_it.is_set()
    with lock.try_shared() as held:
        assert held
    with lock.exclusive():  # every shared hold was released: the writer gets it at once
        pass
