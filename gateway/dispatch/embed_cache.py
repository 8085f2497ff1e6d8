"""The embedding cache: computed vectors by a content hash of everything that makes them.

Shared by every front door, because it sits inside `EmbeddingService`. Bounded by bytes with LRU
eviction; a lock makes it safe from any thread (the event loop today, gRPC or bench code tomorrow).
A hit hands back the very array the miss stored (read-only), so it is bitwise the vector a worker
made, with the token counts that make `usage` and the truncation check true on a hit.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from gateway.metrics import Metrics

# Per entry beyond the vector: the 16-byte key, the entry object, the OrderedDict slot. An
# estimate (CPython's sizes vary by version), so a budget of many short vectors is not overrun.
ENTRY_OVERHEAD = 160


def cache_key(model: str, pooling: str, normalize: bool, truncate: bool, prompt: str, text: str) -> bytes:
    """A 16-byte BLAKE2b digest of everything that changes the vector (and its truncation check).

    `prompt` is the instruction put before the text (query/document prompts); "" when there is none.
    Each part is length-prefixed, so no two different tuples hash the same bytes.
    """
    h = hashlib.blake2b(digest_size=16, person=b"akidb-embed-v1")
    for part in (model, pooling, "1" if normalize else "0", "1" if truncate else "0", prompt, text):
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


@dataclass(frozen=True, slots=True)
class CachedEmbedding:
    vector: np.ndarray  # read-only float32 row, exactly as the worker sent it
    token_count: int  # tokens embedded (after truncation): what `usage` reports
    input_tokens: int  # tokens before truncation: what the truncate=false check reads

    @property
    def nbytes(self) -> int:
        return int(self.vector.nbytes) + ENTRY_OVERHEAD


class EmbeddingCache:
    """LRU by bytes; `max_bytes` 0 turns it off (every lookup misses, nothing is stored or counted)."""

    def __init__(self, max_bytes: int, metrics: Metrics) -> None:
        self.max_bytes = max_bytes
        self.metrics = metrics
        self._entries: OrderedDict[bytes, CachedEmbedding] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get_many(self, keys: list[bytes]) -> list[CachedEmbedding | None]:
        """The entry for each key, or None; hits become the most recently used."""
        if not self.enabled:
            return [None] * len(keys)
        found: list[CachedEmbedding | None] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                found.append(entry)
        hits = sum(e is not None for e in found)
        self.metrics.cache_hits.inc(hits)
        self.metrics.cache_misses.inc(len(keys) - hits)
        return found

    def put_many(self, items: list[tuple[bytes, CachedEmbedding]]) -> None:
        """Store entries (a vector larger than the whole budget is not stored), evicting the least recently used."""
        if not self.enabled:
            return
        evicted = 0
        with self._lock:
            for key, entry in items:
                size = entry.nbytes
                if size > self.max_bytes:
                    continue
                old = self._entries.pop(key, None)
                if old is not None:
                    self._bytes -= old.nbytes
                self._entries[key] = entry
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, dropped = self._entries.popitem(last=False)
                    self._bytes -= dropped.nbytes
                    evicted += 1
            held, count = self._bytes, len(self._entries)
        self.metrics.cache_evictions.inc(evicted)
        self.metrics.cache_bytes.set(held)
        self.metrics.cache_entries.set(count)


def entry(row: np.ndarray, token_count: int, input_tokens: int) -> CachedEmbedding:
    """A cache entry owning a read-only copy of one row (the caller's matrix stays writable and its own)."""
    vector = np.array(row, dtype=np.float32, copy=True)
    vector.setflags(write=False)
    return CachedEmbedding(vector, int(token_count), int(input_tokens))
