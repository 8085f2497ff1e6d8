"""MLX cross-encoders' loading: checkpoint names, the Qwen3-Reranker's yes/no head, and the errors that say why."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from shared.config import EmbeddingConfig
from tests.support import references as refs
from worker.backends.mlx_qwen3_rerank import yes_minus_no
from worker.backends.mlx_rerank import MlxCrossEncoder, checkpoint_names
from worker.loader import ModelLoadError, locate


def test_checkpoint_names_put_the_encoder_and_the_head_apart() -> None:
    one = mx.zeros((1,))
    names = checkpoint_names(
        {
            "bert.embeddings.word_embeddings.weight": one,
            "bert.pooler.dense.weight": one,
            "classifier.weight": one,
            "roberta.encoder.layer.0.output.dense.bias": one,
            "classifier.out_proj.bias": one,
            "bert.embeddings.position_ids": one,  # a buffer, not a weight
        }
    )
    assert sorted(names) == [
        "encoder_model.embeddings.word_embeddings.weight",
        "encoder_model.encoder.layer.0.output.dense.bias",
        "head.classifier.out_proj.bias",
        "head.classifier.weight",
        "head.pooler.dense.weight",
    ]


def test_weights_that_do_not_fit_say_so(tmp_path: Path) -> None:
    source = locate(replace(EmbeddingConfig(), model_name="x", model_path=str(refs.TINY_RERANKERS["bert"])))
    mx.save_safetensors(str(tmp_path / "model.safetensors"), {"classifier.weight": mx.zeros((1, 32))})
    with pytest.raises(ModelLoadError, match=r"do not fit a cross-encoder"):
        MlxCrossEncoder(replace(source, path=tmp_path), "f32")


def test_yes_minus_no_reads_the_lm_head_or_the_tied_embeddings() -> None:
    table = mx.array(np.arange(12, dtype=np.float32).reshape(4, 3))
    assert yes_minus_no({"model.embed_tokens.weight": table}, 3, 1, "x").tolist() == [6.0, 6.0, 6.0]
    head = {"model.embed_tokens.weight": table, "lm_head.weight": table * 2}
    assert yes_minus_no(head, 3, 1, "x").tolist() == [12.0, 12.0, 12.0]


def test_yes_minus_no_refuses_missing_and_quantised_heads() -> None:
    with pytest.raises(ModelLoadError, match=r"neither lm_head.weight nor model.embed_tokens.weight"):
        yes_minus_no({}, 1, 0, "folder")
    quantised = {"model.embed_tokens.weight": mx.zeros((4, 3)), "model.embed_tokens.scales": mx.zeros((4, 1))}
    with pytest.raises(ModelLoadError, match=r"quantised Qwen3-Reranker checkpoints are not supported yet"):
        yes_minus_no(quantised, 1, 0, "folder")
