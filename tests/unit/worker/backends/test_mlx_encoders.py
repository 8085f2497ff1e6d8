"""The MLX encoders in-process on the tiny fixtures: precision handling and refusals at load."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from shared.config import EmbeddingConfig
from tests.support import references as refs
from worker.backends.mlx_bert import BertModel
from worker.backends.mlx_qwen3 import MlxQwen3Encoder
from worker.loader import ModelLoadError, locate
from worker.tokenize import TextTokenizer, pad

REF = refs.load("tiny_qwen3_reference")


def qwen3(folder: str, precision: str, name: str = "tiny") -> tuple[MlxQwen3Encoder, np.ndarray]:
    """The encoder and its raw last-token vectors for the reference texts, one text per pass."""
    source = locate(replace(EmbeddingConfig(), model_name=name, model_path=folder))
    encoder = MlxQwen3Encoder(source, precision)
    tok = TextTokenizer.from_folder(source.path, 512)
    rows = [encoder.pooled(*pad([ids]), "last")[0] for ids in tok.encode([str(t) for t in REF["texts"]]).ids]
    return encoder, np.stack(rows)


def test_auto_keeps_the_checkpoints_f32() -> None:
    encoder, rows = qwen3(str(refs.TINY_QWEN3), "auto")
    assert (encoder.precision, encoder.dimension) == ("f32", 64)
    assert refs.cosines(rows, REF["pooled_last"]).min() >= refs.PARITY_F32


def test_bf16_is_honoured_and_close() -> None:
    encoder, rows = qwen3(str(refs.TINY_QWEN3), "bf16")
    assert encoder.precision == "bf16"
    cos = refs.cosines(rows, REF["pooled_last"])
    assert 0.99 < cos.min() < refs.PARITY_F32  # really computed in bf16, and still the same vectors


def test_quantised_checkpoint_reports_its_bits_whatever_was_asked() -> None:
    encoder, _ = qwen3(str(refs.TINY_QWEN3_4BIT), "bf16", name="qwen3-0.6b-4bit")
    assert encoder.precision == "int4"


BERT = {
    "vocab_size": 10,
    "hidden_size": 8,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "max_position_embeddings": 16,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_act": "relu"}, "hidden_act 'relu' is not supported"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key' is not supported"),
    ],
)
def test_bert_variants_we_would_compute_wrongly_are_refused(change: dict[str, str], message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        BertModel({**BERT, **change})
