"""The gateway ⇄ worker wire: protocol version, message types and one struct per message.

Structs only. `shared.codec` is the one module that turns them into ZeroMQ frames and back.

Structs are slotted frozen dataclasses rather than msgspec Structs: the standard library is
enough for a dozen small messages, and the wire's code here (which the worker imports too)
needs msgpack alone. msgspec is the gateway's, for its HTTP schemas (`gateway/api/schemas`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

PROTOCOL_VERSION = 1


class MsgType(enum.IntEnum):
    """The one-byte message type in every header frame."""

    READY = 1
    HEARTBEAT = 2
    JOB = 3
    RESULT = 4
    ERROR = 5
    DISCONNECT = 6


class ErrorCode(enum.StrEnum):
    """Why a worker could not finish a job."""

    UNKNOWN_MODEL = "unknown_model"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INVALID_JOB = "invalid_job"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model a worker serves, as it announces it in READY."""

    name: str
    dimension: int
    max_tokens: int
    pooling: str
    aliases: tuple[str, ...] = ()
    backend: str = ""
    device: str = ""
    precision: str = ""
    # Prepended to texts of requests that say `input_type: query` / `document` (asymmetric
    # models: e5, bge, Qwen3-Embedding). Empty: that input type embeds the text as it is.
    query_prompt: str = ""
    document_prompt: str = ""
    # "embed" (texts → vectors) or "rerank" (a cross-encoder: (query, document) pairs → one score).
    # Optional with a default, so an embedding worker's READY is the map older gateways know and
    # PROTOCOL_VERSION stays 1; an older gateway refuses a reranker's READY as an unknown field (loud).
    kind: str = "embed"

    def prompt_for(self, input_type: str | None) -> str:
        """The prompt for a request's `input_type` (`query`, `document`, or None: no prompt)."""
        if input_type == "query":
            return self.query_prompt
        if input_type == "document":
            return self.document_prompt
        return ""


@dataclass(frozen=True, slots=True)
class Ready:
    """Worker → gateway: sent after warm-up, and again after every reconnect."""

    worker_id: str
    models: tuple[ModelInfo, ...]
    device: str
    capacity: int
    host: str = ""
    pid: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Both ways, every heartbeat interval, so each side can tell the other is alive."""


@dataclass(frozen=True, slots=True)
class Job:
    """Gateway → worker: embed these texts, or (a rerank job) score these (query, document) pairs.

    `deadline_ms` is the time left when the job was sent, not a wall-clock instant, so a
    worker on another machine does not need a synchronised clock. `prompt` goes in front of
    every text (all texts of a job share it); it travels apart from the texts so the worker
    can make sure truncation cuts only the text, never the prompt.

    A rerank job has `queries`: pair i is `(queries[query_of[i]], texts[i])`, so the chunks of
    several requests (several queries) ride in one job and each query travels once. It is the
    same message rather than a new type so that everything the dispatcher does with a job
    (requeue, suspects, deadlines, stale replies) holds for pairs unchanged; an embedding job
    leaves both fields at their default, off the wire, so its bytes are what they were.
    """

    job_id: int
    model: str
    texts: tuple[str, ...]
    pooling: str
    normalize: bool
    deadline_ms: int
    prompt: str = ""
    queries: tuple[str, ...] = ()
    query_of: tuple[int, ...] = ()

    @property
    def is_rerank(self) -> bool:
        return bool(self.queries)

    def pairs(self) -> list[tuple[str, str]]:
        """A rerank job's (query, document) pairs, in the job's order."""
        return [(self.queries[q], doc) for q, doc in zip(self.query_of, self.texts, strict=True)]


@dataclass(frozen=True, slots=True, eq=False)
class Result:
    """Worker → gateway: one float32 row per text of the job, in the job's order.

    A rerank job's rows have one column: each pair's raw logit (the gateway applies the sigmoid).

    `token_counts` are the tokens embedded (after truncation); `input_tokens` are the
    tokens each text had before truncation, so the gateway can refuse over-long texts for
    requests that asked not to truncate.
    """

    job_id: int
    embeddings: np.ndarray = field(repr=False)
    token_counts: tuple[int, ...]
    input_tokens: tuple[int, ...]
    compute_ms: float


@dataclass(frozen=True, slots=True)
class Error:
    """Worker → gateway: the job failed; `code` is an `ErrorCode` value."""

    job_id: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Either way: the sender is leaving (worker shutdown) or refuses the peer (unknown worker)."""

    reason: str = ""


# A gateway DISCONNECT whose reason starts with this turns the worker away for good (its READY
# clashes with what the gateway serves): the worker stops instead of sending READY again.
REFUSED = "refused: "

Message = Ready | Heartbeat | Job | Result | Error | Disconnect

MESSAGE_TYPES: dict[MsgType, type] = {
    MsgType.READY: Ready,
    MsgType.HEARTBEAT: Heartbeat,
    MsgType.JOB: Job,
    MsgType.RESULT: Result,
    MsgType.ERROR: Error,
    MsgType.DISCONNECT: Disconnect,
}
TYPE_OF: dict[type, MsgType] = {cls: t for t, cls in MESSAGE_TYPES.items()}
