"""When a collection saves its index snapshot: after enough changes, and after a failure only once a backoff passed.

A plain object with the clock passed in, so its tests are tables with no disk and no sleeps.
"""

from __future__ import annotations

# A failed save (a full or read-only disk) is retried after 1 s, then 2, 4, ... up to 5 minutes: soon
# enough that a freed disk gets a snapshot quickly, rarely enough that a broken one costs little.
FIRST_RETRY_S = 1.0
LONGEST_RETRY_S = 300.0


class SnapshotPolicy:
    """Due once `every` changes are unsaved, unless the last failure's backoff has not passed yet."""

    def __init__(self, every: int, first_retry_s: float = FIRST_RETRY_S, longest_retry_s: float = LONGEST_RETRY_S):
        self.every = every
        self.first_retry_s = first_retry_s
        self.longest_retry_s = longest_retry_s
        self.failures = 0  # consecutive
        self.retry_at = 0.0

    def due(self, changes: int, now: float) -> bool:
        """Whether a snapshot should start now."""
        return changes >= self.every and now >= self.retry_at

    def failed(self, now: float) -> float:
        """Record a failed save; returns the seconds until the next try."""
        self.failures += 1
        wait = min(self.first_retry_s * 2 ** (self.failures - 1), self.longest_retry_s)
        self.retry_at = now + wait
        return wait

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at = 0.0
