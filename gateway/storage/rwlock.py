"""A readers-writer lock for threads: many searches at once, or one index change."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class RWLock:
    """Shared for readers, exclusive for a writer. A waiting writer holds new readers back so a
    steady stream of searches cannot starve inserts."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock with other readers."""
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def try_shared(self) -> Iterator[bool]:
        """Hold the lock with other readers if that needs no wait; yields whether it is held."""
        with self._cond:
            held = not (self._writer or self._writers_waiting)
            if held:
                self._readers += 1
        try:
            yield held
        finally:
            if held:
                with self._cond:
                    self._readers -= 1
                    if not self._readers:
                        self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock alone."""
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
