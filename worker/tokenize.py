"""Batch tokenisation with honest truncation: every text's length before and after."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from worker.loader import ModelLoadError

# What one forward pass costs beyond its tokens, in token-equivalents: every weight is read
# once per pass (90 MB for MiniLM), which is about the time of 16 more tokens on a 2-core CPU.
PASS_COST_TOKENS = 16


@dataclass(frozen=True)
class Tokenized:
    """Token ids per text (already truncated) and each text's length before truncation."""

    ids: list[list[int]]
    input_tokens: list[int]

    @property
    def token_counts(self) -> list[int]:
        return [len(i) for i in self.ids]


class PromptTooLong(ValueError):
    """A prompt that leaves no room for text within `max_tokens`."""


class TextTokenizer:
    """The model's fast tokenizer (the Rust `tokenizers` library behind transformers' fast tokenizers)."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int) -> None:
        self._tok = tokenizer
        self.max_tokens = max_tokens
        # Packaged tokenizer.json files pin padding and truncation (all-MiniLM-L6-v2 pins
        # 128); we pad per length group and truncate at max_tokens ourselves.
        self._tok.no_padding()
        self._tok.no_truncation()
        # Tokens the post-processor adds to every text ([CLS] [SEP], <|endoftext|>).
        self.special_tokens = len(self._tok.encode("").ids)
        self._prompt_tokens: dict[str, int] = {}

    @classmethod
    def from_folder(cls, folder: Path, max_tokens: int) -> TextTokenizer:
        """Load `tokenizer.json`, or let transformers convert a slow tokenizer's files."""
        return cls(load_tokenizer(folder), max_tokens)

    def prompt_tokens(self, prompt: str) -> int:
        """Tokens of `prompt` alone; raises `PromptTooLong` if it leaves no token for text."""
        if prompt not in self._prompt_tokens:
            n = len(self._tok.encode(prompt, add_special_tokens=False).ids)
            if n + self.special_tokens >= self.max_tokens:
                raise PromptTooLong(
                    f"the prompt {prompt[:40]!r}... takes {n} tokens (+{self.special_tokens} special), leaving no "
                    f"room for text within max_tokens {self.max_tokens}; shorten embedding.query_prompt / "
                    "document_prompt or raise embedding.max_tokens"
                )
            self._prompt_tokens[prompt] = n
        return self._prompt_tokens[prompt]

    def encode(self, texts: Sequence[str], prompt: str = "") -> Tokenized:
        """Tokenise `prompt + text` with special tokens; texts over `max_tokens` are re-encoded truncated.

        The prompt joins each text as a string, as the models' cards prescribe, so the tokens where
        the two meet are the ones the model was trained on (tokenising them apart can split a word
        differently). Truncation keeps the first tokens, and the prompt is checked to leave room
        for text, so only the text is ever cut. Counts include the prompt's tokens.
        """
        if prompt:
            self.prompt_tokens(prompt)
            texts = [prompt + t for t in texts]
        encodings = self._tok.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        input_tokens = [len(i) for i in ids]
        over = [i for i, n in enumerate(input_tokens) if n > self.max_tokens]
        if over:
            # Re-encoding keeps the post-processor's special tokens ([SEP], <|endoftext|>)
            # inside the limit, which slicing the ids would drop.
            self._tok.enable_truncation(self.max_tokens)
            try:
                shortened = self._tok.encode_batch([texts[i] for i in over])
            finally:
                self._tok.no_truncation()
            for i, enc in zip(over, shortened, strict=True):
                ids[i] = enc.ids
        return Tokenized(ids=ids, input_tokens=input_tokens)


def load_tokenizer(folder: Path) -> Tokenizer:
    """The folder's `tokenizer.json`, or a slow tokenizer's files converted by transformers."""
    path = folder / "tokenizer.json"
    try:
        if path.exists():
            return Tokenizer.from_file(str(path))
        from transformers import AutoTokenizer  # only for folders without tokenizer.json

        return AutoTokenizer.from_pretrained(str(folder), use_fast=True).backend_tokenizer
    except Exception as exc:  # tokenizers and transformers raise many unrelated types here
        raise ModelLoadError(
            f"cannot load the tokenizer in {folder} ({type(exc).__name__}: {exc}); the folder needs "
            "tokenizer.json (or a slow tokenizer's files): download the model again or fix embedding.model_path"
        ) from None


def pad(rows: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to the longest row: (input_ids, attention_mask), both int32."""
    width = max(len(r) for r in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(rows), width), dtype=np.int32)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask


def length_groups(
    lengths: Sequence[int], batch_size: int, token_budget: int, pass_cost: int = PASS_COST_TOKENS
) -> list[list[int]]:
    """Indices sorted by length, cut into forward passes that waste the least compute on padding.

    A pass costs about `pass_cost` token-equivalents of its own (reading every weight once) plus
    its texts times its longest text. Texts are sorted by length and cut where that total is
    smallest (dynamic programming over the cut points), so one long text does not pad thirty-one
    short ones, yet a batch of similar texts stays one pass. A pass holds at most `batch_size`
    texts and `token_budget` padded tokens; a text longer than the budget goes alone.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    sizes = [lengths[i] for i in order]
    n = len(sizes)
    best = [0] + [math.inf] * n  # best[i]: least cost of passes covering the i shortest texts
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end - 1, max(end - batch_size, 0) - 1, -1):
            count = end - start
            if count > 1 and count * sizes[end - 1] > token_budget:
                break  # longer groups ending here only get bigger
            cost = best[start] + pass_cost + count * sizes[end - 1]
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups: list[list[int]] = []
    end = n
    while end:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]
