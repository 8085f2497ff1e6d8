"""Pair tokenisation for cross-encoders: (query, document) as one sequence, cut only from the document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer

from worker.loader import ModelLoadError
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


class PairEncoder(Protocol):
    """What the Reranker needs of a tokenizer: `PairTokenizer` or `TemplatePairTokenizer`."""

    max_tokens: int

    def encode(self, pairs: Sequence[Pair]) -> TokenizedPairs: ...


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


@dataclass(frozen=True)
class PairTemplate:
    """A causal-LM reranker's prompt: `prefix`, then `body` with the query and document filled in, then `suffix`."""

    prefix: str
    body: str  # with {query} and {document}; the document comes last, so cutting the end cuts only it
    suffix: str


# Qwen3-Reranker's model card: a yes/no judgement, answered after an empty thinking block.
QWEN3_RERANK_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
QWEN3_RERANK_TEMPLATE = PairTemplate(
    prefix=(
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
        'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
    ),
    body=f"<Instruct>: {QWEN3_RERANK_INSTRUCTION}\n<Query>: {{query}}\n<Document>: {{document}}",
    suffix="<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
)


class TemplatePairTokenizer:
    """Pairs as one prompt (Qwen3-Reranker): prefix + body + suffix, the body cut from its end (the document)."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int, template: PairTemplate) -> None:
        self._tok = tokenizer
        self.max_tokens = max_tokens
        self.template = template
        self._tok.no_padding()
        self._tok.no_truncation()
        # Tokenised apart, as the model card does: the prefix and suffix end and start at special tokens.
        self._prefix = self._tok.encode(template.prefix, add_special_tokens=False).ids
        self._suffix = self._tok.encode(template.suffix, add_special_tokens=False).ids
        self.special_tokens = len(self._prefix) + len(self._suffix)

    @classmethod
    def from_folder(cls, folder: Path, max_tokens: int, template: PairTemplate) -> TemplatePairTokenizer:
        """Load the folder's tokenizer (see `worker.tokenize.load_tokenizer`)."""
        return cls(load_tokenizer(folder), max_tokens, template)

    def token_id(self, token: str) -> int:
        """The id of one vocabulary token ("yes", "no"); a load error if the vocabulary lacks it."""
        found = self._tok.token_to_id(token)
        if found is None:
            raise ModelLoadError(f"the tokenizer has no token {token!r}; is this a Qwen3-Reranker folder?")
        return int(found)

    def encode(self, pairs: Sequence[Pair]) -> TokenizedPairs:
        """The prompt's ids per pair; over `max_tokens`, the body loses its last tokens (the document's end)."""
        bodies = [self.template.body.format(query=q, document=d) for q, d in pairs]
        budget = self.max_tokens - self.special_tokens
        ids, input_tokens = [], []
        for i, enc in enumerate(self._tok.encode_batch(bodies, add_special_tokens=False)):
            body = enc.ids
            if len(body) > budget:
                head = self.template.body.format(query=pairs[i][0], document="")
                query_tokens = len(self._tok.encode(head, add_special_tokens=False).ids)
                if query_tokens >= budget:
                    raise QueryTooLong(
                        f"pairs[{i}]: the query and instruction take {query_tokens} tokens "
                        f"(+{self.special_tokens} of the prompt), leaving no room for its document within "
                        f"max_tokens {self.max_tokens}; shorten the query"
                    )
            ids.append(self._prefix + body[:budget] + self._suffix)
            input_tokens.append(len(body) + self.special_tokens)
        return TokenizedPairs(ids=ids, type_ids=[[0] * len(row) for row in ids], input_tokens=input_tokens)


def pad_types(rows: Sequence[Sequence[int]], width: int) -> np.ndarray:
    """Right-pad segment ids to `width` with 0, int32 (the partner of `worker.tokenize.pad`)."""
    out = np.zeros((len(rows), width), dtype=np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out
