"""The worker's model interface: texts in, pooled (and normalised) float32 rows out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from shared.protocol import ModelInfo
from worker.loader import ModelSource
from worker.pooling import l2_normalize
from worker.tokenize import TextTokenizer, length_groups, pad

# Padded tokens per forward pass: 32 texts of 128 tokens, or 16 of 256.
TOKEN_BUDGET = 4096
# The longest warm-up input: enough to size MLX's buffers for ordinary texts.
WARM_UP_TOKENS = 512


class Encoder(Protocol):
    """A backend's forward pass plus pooling. Backends: `worker.backends.*`."""

    backend: str
    device: str
    precision: str
    dimension: int

    def pooled(self, input_ids: np.ndarray, attention_mask: np.ndarray, pooling: str) -> np.ndarray:
        """(batch, dimension) float32 pooled rows for right-padded int32 inputs."""
        ...


@dataclass(frozen=True)
class Embedded:
    vectors: np.ndarray
    token_counts: list[int]
    input_tokens: list[int]


class Embedder:
    """Tokenise, group by length, run the `Encoder` (forward pass and pooling), normalise: what `Runner` serves."""

    def __init__(self, source: ModelSource, tokenizer: TextTokenizer, encoder: Encoder, batch_size: int) -> None:
        self.source = source
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.batch_size = batch_size

    @property
    def info(self) -> ModelInfo:
        """What READY announces about this model."""
        return ModelInfo(
            name=self.source.name,
            dimension=self.encoder.dimension,
            max_tokens=self.tokenizer.max_tokens,
            pooling=self.source.pooling,
            aliases=self.source.aliases,
            backend=self.encoder.backend,
            device=self.encoder.device,
            precision=self.encoder.precision,
            query_prompt=self.source.query_prompt,
            document_prompt=self.source.document_prompt,
        )

    def embed(
        self, texts: Sequence[str], pooling: str | None = None, normalize: bool = True, prompt: str = ""
    ) -> Embedded:
        """One row per text, in the order given; `prompt` goes before each text (`PromptTooLong` if it does not fit)."""
        tokens = self.tokenizer.encode(texts, prompt)
        lengths = tokens.token_counts
        out = np.empty((len(texts), self.encoder.dimension), dtype=np.float32)
        for group in length_groups(lengths, self.batch_size, TOKEN_BUDGET):
            input_ids, mask = pad([tokens.ids[i] for i in group])
            out[group] = self.encoder.pooled(input_ids, mask, pooling or self.source.pooling)
        if normalize:
            out = l2_normalize(out)
        return Embedded(out, lengths, tokens.input_tokens)

    def warm_up(self) -> None:
        """Run short and long inputs once so the first real job pays no first-call costs."""
        self.embed(["warm-up"] * 2)
        # Capped: a 32k-token Qwen3 limit would make the warm-up itself cost minutes and gigabytes.
        self.embed(["warm-up " * (min(self.tokenizer.max_tokens, WARM_UP_TOKENS) // 4)])
