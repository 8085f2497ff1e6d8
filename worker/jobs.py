"""What the IO thread and the compute loop hand each other: jobs one way, tagged result frames the other."""

from __future__ import annotations

from dataclasses import dataclass

from shared.protocol import Job

# The compute loop's PUSH connects here; the IO thread's PULL binds it (ZeroMQ sockets are single-thread).
RESULTS_ENDPOINT = "inproc://akidb-results"


@dataclass(slots=True)
class Assignment:
    """A job and the session (gateway) it came from.

    `abandoned` is set by the IO thread when that gateway stops waiting for the job (it was lost,
    or forgot this worker), so the compute loop skips it instead of spending a forward pass on it.
    A plain attribute is enough: one thread writes it, one reads it, and a late read only costs
    one wasted job.
    """

    session: int
    job: Job
    abandoned: bool = False


def result_tag(session: int, job_id: int) -> bytes:
    """The first frame of a result on the inproc pair: which session and job it answers."""
    return f"{session} {job_id}".encode()


def read_tag(tag: bytes) -> tuple[int, int]:
    """(session, job_id) from `result_tag`'s frame."""
    session, job_id = tag.split()
    return int(session), int(job_id)
