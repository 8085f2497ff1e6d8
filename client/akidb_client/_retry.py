"""When to try a request again: a plain policy object, no IO, so its rules are tested as tables."""

from __future__ import annotations

from dataclasses import dataclass

# The server did not do the work: always safe to send again.
RETRY_ALWAYS = frozenset({429, 503})
# The work may have been done (or half done): only a call that can run twice is sent again.
RETRY_IDEMPOTENT = frozenset({502, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most `max_attempts` sends within `budget_s` seconds, doubling backoff from `backoff_s`."""

    max_attempts: int = 5
    budget_s: float = 30.0
    backoff_s: float = 0.25
    max_backoff_s: float = 5.0

    def delay(
        self,
        *,
        attempt: int,
        elapsed_s: float,
        idempotent: bool,
        status: int | None = None,
        connect_failed: bool = False,
        retry_after: str | None = None,
        elsewhere: bool = False,
    ) -> float | None:
        """Seconds to wait before send number `attempt + 1`, or None to give up.

        `status` is the error response's (None for a transport error); `connect_failed` means the
        request never reached the server (nothing sent, so safe for any call); `elsewhere` means the next
        send goes to another gateway this call has not tried, which needs no wait.
        """
        if attempt + 1 >= self.max_attempts:
            return None
        if status is None:
            retryable = connect_failed or idempotent
        else:
            retryable = status in RETRY_ALWAYS or (idempotent and status in RETRY_IDEMPOTENT)
        if not retryable:
            return None
        if elsewhere:
            return 0.0
        wait = min(self.backoff_s * 2.0**attempt, self.max_backoff_s)
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            wait = hinted
        if elapsed_s + wait > self.budget_s:
            return None
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the server sends delta-seconds; an HTTP date is not worth a parser here)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
