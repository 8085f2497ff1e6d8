"""Pair tokenisation for cross-encoders: (query, document) as one sequence, cut only from the document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from worker.tokenize import load_tokenizer

Pair = tuple[str, str]


@dataclass(frozen=True)
class TokenizedPairs:
    """Per pair: token ids and segment ids (already truncated), and the pair's length before truncation."""

    ids: list[list[int]]
    type_ids: list[list[int]]
    input_tokens: list[int]

    @property
    def token_counts(self) -> list[int]:
        return [len(i) for i in self.ids]

    @property
    def truncated(self) -> int:
        """How many pairs lost document tokens."""
        return sum(n > len(i) for n, i in zip(self.input_tokens, self.ids, strict=True))


class QueryTooLong(ValueError):
    """A query that leaves no room for any document token within `max_tokens`."""


class PairTokenizer:
    """The model's fast tokenizer and pair template: `[CLS] q [SEP] d [SEP]` (BERT), `<s> q </s></s> d </s>` (XLM-R)."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int) -> None:
        self._tok = tokenizer
        self.max_tokens = max_tokens
        # Packaged tokenizer.json files may pin padding and truncation; we pad per length group
        # and truncate at max_tokens ourselves, from the document only.
        self._tok.no_padding()
        self._tok.no_truncation()
        # Tokens the pair template adds: 3 for BERT, 4 for XLM-R.
        processor = self._tok.post_processor
        self.special_tokens = processor.num_special_tokens_to_add(True) if processor else 0

    @classmethod
    def from_folder(cls, folder: Path, max_tokens: int) -> PairTokenizer:
        """Load the folder's tokenizer (see `worker.tokenize.load_tokenizer`)."""
        return cls(load_tokenizer(folder), max_tokens)

    def encode(self, pairs: Sequence[Pair]) -> TokenizedPairs:
        """Tokenise each pair with the model's template; pairs over `max_tokens` lose document tokens from the end.

        The query is never cut: a query that leaves no document token room is `QueryTooLong`,
        naming the pair. Counts include the special tokens, as for embeddings.
        """
        encodings = self._tok.encode_batch(list(pairs))
        ids = [e.ids for e in encodings]
        type_ids = [e.type_ids for e in encodings]
        input_tokens = [len(i) for i in ids]
        over = [i for i, n in enumerate(input_tokens) if n > self.max_tokens]
        if over:
            for i in over:
                query_tokens = encodings[i].sequence_ids.count(0)
                if query_tokens + self.special_tokens >= self.max_tokens:
                    raise QueryTooLong(
                        f"pairs[{i}]: the query takes {query_tokens} tokens (+{self.special_tokens} special), "
                        f"leaving no room for its document within max_tokens {self.max_tokens}; shorten the query"
                    )
            # Re-encoding keeps the template's closing [SEP] inside the limit, which slicing would drop;
            # "only_second" cuts the document's end and never the query.
            self._tok.enable_truncation(self.max_tokens, strategy="only_second")
            try:
                shortened = self._tok.encode_batch([pairs[i] for i in over])
            finally:
                self._tok.no_truncation()
            for i, enc in zip(over, shortened, strict=True):
                ids[i], type_ids[i] = enc.ids, enc.type_ids
        return TokenizedPairs(ids=ids, type_ids=type_ids, input_tokens=input_tokens)


def pad_types(rows: Sequence[Sequence[int]], width: int) -> np.ndarray:
    """Right-pad segment ids to `width` with 0, int32 (the partner of `worker.tokenize.pad`)."""
    out = np.zeros((len(rows), width), dtype=np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out
