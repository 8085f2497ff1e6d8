"""The worker's reranking interface: (query, document) pairs in, one raw relevance logit per pair out.

A cross-encoder reads the query and the document together and its classification head scores
the pair from the first token's state: there is no pooling to choose and no vector to
normalise. `sigmoid` turns the logits into the 0..1 scores sentence-transformers' CrossEncoder
reports for one-label models; the caller decides whether to apply it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from shared.protocol import ModelInfo
from shared.scores import sigmoid
from worker.embedder import TOKEN_BUDGET, WARM_UP_TOKENS

__all__ = ["CrossEncoder", "Reranker", "Scored", "sigmoid"]
from worker.loader import ModelSource
from worker.pairs import Pair, PairEncoder, pad_types
from worker.tokenize import length_groups, pad


class CrossEncoder(Protocol):
    """A backend's forward pass and classification head. Backends: `worker.backends.*_rerank`."""

    backend: str
    device: str
    precision: str

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        """(batch,) float32 raw logits for right-padded int32 inputs."""
        ...


@dataclass(frozen=True)
class Scored:
    """Raw logits in the order of the pairs given, each pair's tokens scored and its length before truncation."""

    logits: np.ndarray
    token_counts: list[int]
    input_tokens: list[int]

    @property
    def truncated(self) -> int:
        """How many pairs lost document tokens (the rerank twin of the embedding truncation counter)."""
        return sum(n > c for n, c in zip(self.input_tokens, self.token_counts, strict=True))


class Reranker:
    """Tokenise pairs, group by length, run the `CrossEncoder`: what a rerank job will be served by."""

    def __init__(self, source: ModelSource, tokenizer: PairEncoder, model: CrossEncoder, batch_size: int) -> None:
        self.source = source
        self.tokenizer = tokenizer
        self.model = model
        self.batch_size = batch_size
        # Padding ids are masked out everywhere; the model's own pad id keeps padded rows well-formed.
        self.pad_id = int(source.config.get("pad_token_id") or 0)

    @property
    def info(self) -> ModelInfo:
        """What READY announces: kind "rerank", and one column (the logit) as its dimension."""
        return ModelInfo(
            name=self.source.name,
            dimension=1,
            max_tokens=self.tokenizer.max_tokens,
            pooling=self.source.pooling,
            aliases=self.source.aliases,
            backend=self.model.backend,
            device=self.model.device,
            precision=self.model.precision,
            kind="rerank",
        )

    def score(self, pairs: Sequence[Pair]) -> Scored:
        """One logit per pair, in the order given (`QueryTooLong` if a query leaves its document no room)."""
        tokens = self.tokenizer.encode(pairs)
        lengths = tokens.token_counts
        out = np.empty(len(pairs), dtype=np.float32)
        for group in length_groups(lengths, self.batch_size, TOKEN_BUDGET):
            input_ids, mask = pad([tokens.ids[i] for i in group], self.pad_id)
            types = pad_types([tokens.type_ids[i] for i in group], input_ids.shape[1])
            out[group] = self.model.logits(input_ids, mask, types)
        return Scored(out, lengths, tokens.input_tokens)

    def warm_up(self) -> None:
        """Score short and long pairs once so the first real job pays no first-call costs."""
        self.score([("warm-up", "warm-up")] * 2)
        # Capped: bge-reranker-v2-m3 takes 8192 tokens, which would make the warm-up itself slow.
        self.score([("warm-up", "warm-up " * (min(self.tokenizer.max_tokens, WARM_UP_TOKENS) // 4))])
