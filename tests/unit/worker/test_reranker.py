"""The Reranker around a fake CrossEncoder: order across length groups, padding, counts and the sigmoid."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from shared.config import EmbeddingConfig
from tests.support import references as refs
from worker.loader import locate
from worker.pairs import PairTokenizer
from worker.reranker import Reranker, sigmoid


class EchoCrossEncoder:
    """Scores a row by its real token count, and records every batch it is given."""

    backend, device, precision = "fake", "cpu", "f32"

    def __init__(self) -> None:
        self.batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        self.batches.append((input_ids, attention_mask, token_type_ids))
        return attention_mask.sum(axis=1).astype(np.float32)


def reranker(folder: str, batch_size: int = 4) -> tuple[Reranker, EchoCrossEncoder]:
    source = locate(replace(EmbeddingConfig(), model_name="tiny", model_path=str(refs.TINY_RERANKERS[folder])))
    fake = EchoCrossEncoder()
    return Reranker(source, PairTokenizer.from_folder(source.path, 64), fake, batch_size), fake


def test_logits_come_back_in_the_order_of_the_pairs_across_length_groups() -> None:
    rr, fake = reranker("bert", batch_size=2)
    pairs = [("q", "doc " * n) for n in (30, 1, 90, 5, 12, 2)]
    out = rr.score(pairs)
    assert out.logits.tolist() == [float(c) for c in out.token_counts]
    assert out.token_counts[2] == 64 and out.input_tokens[2] > 64 and out.truncated == 1
    assert len(fake.batches) >= 3 and all(len(ids) <= 2 for ids, _, _ in fake.batches)


def test_padding_uses_the_models_pad_id_and_segment_zero() -> None:
    rr, fake = reranker("xlmr", batch_size=8)  # XLM-R pads with id 1, BERT with 0
    rr.score([("cat", "dog"), ("cat", "dogs and cats")])  # close in length: one pass, one padded
    ((ids, mask, types),) = fake.batches
    assert rr.pad_id == 1
    assert (ids[mask == 0] == 1).all() and (types[mask == 0] == 0).all() and (mask == 0).any()
    assert ids.dtype == mask.dtype == types.dtype == np.int32


def test_bert_segments_reach_the_model() -> None:
    rr, fake = reranker("bert")
    rr.score([("what is it", "a document")])
    ((ids, _, types),) = fake.batches
    first_sep = ids[0].tolist().index(3)  # the fixture's [SEP]
    assert types[0, : first_sep + 1].tolist() == [0] * (first_sep + 1)
    assert set(types[0, first_sep + 1 :].tolist()) == {1}


def test_sigmoid_is_crossencoders_activation_and_does_not_overflow() -> None:
    got = sigmoid(np.array([0.0, 2.0, -800.0, 800.0], dtype=np.float32))
    np.testing.assert_allclose(got, [0.5, 1 / (1 + np.exp(-2.0)), 0.0, 1.0], atol=1e-7)
    assert got.dtype == np.float32


def test_warm_up_scores_a_short_and_a_long_pair() -> None:
    rr, fake = reranker("bert")
    rr.warm_up()
    assert max(ids.shape[1] for ids, _, _ in fake.batches) == 64
