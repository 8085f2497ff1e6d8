"""The embedding queue: request chunks waiting for a worker, and how they become jobs.

A rerank chunk is the same `Pending` with a `query`: its texts are the documents of (query,
document) pairs. Queues are per model and a model is an embedder or a reranker, so the two kinds
never share a job; rerank chunks of different queries do (a job carries each chunk's query).

Pure bookkeeping with no IO; the dispatcher owns the one instance and decides when to flush.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ChunkResult:
    vectors: np.ndarray
    token_counts: tuple[int, ...]
    input_tokens: tuple[int, ...]


class Slot(Protocol):
    """Where a chunk's outcome goes: an asyncio.Future in the gateway, any future-like object in tests."""

    def done(self) -> bool: ...
    def cancel(self) -> bool: ...
    def set_result(self, result: ChunkResult, /) -> None: ...
    def set_exception(self, exception: BaseException, /) -> None: ...


@dataclass(eq=False)
class Pending:
    """Up to `max_batch_size` texts of one request, waiting for (or riding in) a job."""

    model: str
    texts: tuple[str, ...]
    pooling: str
    normalize: bool
    deadline: float  # loop.time() after which nobody wants the answer
    enqueued: float
    future: Slot = field(repr=False)
    # Workers that died holding this chunk. A suspect (1) rides alone on an idle worker, so a
    # second death convicts the chunk itself, not its neighbours.
    deaths: int = 0
    # Goes before every text of the job (the model's query or document prompt, or none).
    prompt: str = ""
    # A rerank chunk's query: its texts are the documents it is paired with (None: an embedding chunk).
    query: str | None = None

    @property
    def options(self) -> tuple[str, bool, str]:
        """Chunks share a job only if they ask for the same pooling, normalisation and prompt."""
        return (self.pooling, self.normalize, self.prompt)

    @property
    def abandoned(self) -> bool:
        return self.future.done()

    @property
    def suspect(self) -> bool:
        return self.deaths > 0


class Batcher:
    """FIFO queues per model, bounded in total texts."""

    def __init__(self, max_batch_size: int, max_queue_texts: int) -> None:
        self.max_batch_size = max_batch_size
        self.max_queue_texts = max_queue_texts
        self._queues: dict[str, deque[Pending]] = {}
        self.queued_texts = 0

    def has_room(self, n_texts: int) -> bool:
        return self.queued_texts + n_texts <= self.max_queue_texts

    def add(self, item: Pending) -> None:
        self._queues.setdefault(item.model, deque()).append(item)
        self.queued_texts += len(item.texts)

    def requeue(self, items: list[Pending]) -> None:
        """Put a lost job's chunks back at the front, in their original order."""
        for item in reversed(items):
            if not item.abandoned:
                self._queues.setdefault(item.model, deque()).appendleft(item)
                self.queued_texts += len(item.texts)

    def models(self) -> list[str]:
        return [m for m, q in self._queues.items() if q]

    def purge(self, model: str) -> int:
        """Drop every chunk of `model` whose caller has gone, wherever it waits; returns texts dropped.

        All of them, not just the head's: `take` would otherwise drop those behind the head uncounted."""
        queue = self._queues.get(model)
        if not queue or not any(i.abandoned for i in queue):
            return 0
        kept = deque(i for i in queue if not i.abandoned)
        dropped = sum(len(i.texts) for i in queue) - sum(len(i.texts) for i in kept)
        self._queues[model] = kept
        self.queued_texts -= dropped
        return dropped

    def purge_all(self) -> int:
        """Drop every abandoned chunk anywhere in the queues; returns texts dropped."""
        return sum(self.purge(model) for model in list(self._queues))

    def head(self, model: str) -> Pending | None:
        """The oldest live chunk for `model` (call `purge` first to skip abandoned ones)."""
        queue = self._queues.get(model)
        return queue[0] if queue else None

    def ready_texts(self, model: str) -> int:
        """Texts that could join a job with the head chunk right now."""
        head = self.head(model)
        if head is None:
            return 0
        return sum(
            len(i.texts) for i in self._queues[model] if i.options == head.options and not i.abandoned and not i.suspect
        )

    def batch_full(self, model: str) -> bool:
        """Nothing more can join the head's job: it is a suspect (it rides alone) or max_batch_size is reached."""
        head = self.head(model)
        return head is not None and (head.suspect or self.ready_texts(model) >= self.max_batch_size)

    def take(self, model: str) -> list[Pending]:
        """Chunks for one job: the head, plus later chunks with its options, up to max_batch_size texts.

        A suspect head goes alone, and no suspect joins another head's job. Call `purge` first: what it
        leaves behind is dropped here uncounted."""
        queue = self._queues.get(model)
        if not queue:
            return []
        head = queue[0]
        taken: list[Pending] = []
        kept: deque[Pending] = deque()
        size = 0
        for item in queue:
            if item.abandoned:
                self.queued_texts -= len(item.texts)
                continue
            fits = (
                not head.suspect
                and not item.suspect
                and item.options == head.options
                and size + len(item.texts) <= self.max_batch_size
            )
            if fits or not taken:
                taken.append(item)
                size += len(item.texts)
            else:
                kept.append(item)
        self._queues[model] = kept
        self.queued_texts -= size
        return taken

    def take_all(self, model: str) -> list[Pending]:
        """Empty one model's queue (at shutdown)."""
        items = list(self._queues.pop(model, ()))
        self.queued_texts -= sum(len(i.texts) for i in items)
        return items
