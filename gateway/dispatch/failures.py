"""Why the dispatcher could not deliver a chunk: its own values, with no HTTP or gRPC in them.

The core stays importable without grpc or aiohttp; `gateway.errors.from_dispatch` is the one
place these become the errors clients see, applied where the transport settles callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    QUEUE_FULL = "queue_full"  # batching.max_queue_texts reached: retry later
    SHUTTING_DOWN = "shutting_down"  # the gateway is closing
    DEADLINE = "deadline"  # the worker saw the request's deadline pass before it ran the job
    INVALID_JOB = "invalid_job"  # the worker judged the input itself bad
    WORKER_FAILED = "worker_failed"  # the worker took the job and failed it, or answered nonsense
    POISONED = "poisoned"  # every worker that held the chunk died: the input likely crashes the engine


@dataclass(frozen=True)
class Failure:
    """One reason and the message the caller will read (it names the knob to turn)."""

    reason: Reason
    message: str
