"""Cross-encoders (BERT and XLM-R sequence classifiers) on MLX: the embedding path's `BertModel` plus a head.

    BERT   (ms-marco-MiniLM-L-6-v2)  classifier(tanh(pooler.dense(h[:, 0])))
    XLM-R  (bge-reranker-*)          classifier.out_proj(tanh(classifier.dense(h[:, 0])))

Module names mirror the checkpoint's after its `bert.` / `roberta.` prefix, so weights load by name.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from worker.backends.mlx_bert import BertModel
from worker.backends.mlx_common import DTYPES
from worker.backends.mlx_device import device_label, mlx_device
from worker.backends.mlx_weights import read_safetensors
from worker.loader import ModelLoadError, ModelSource, check_cross_encoder_config


class _Dense(nn.Module):
    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)


class _BertHead(nn.Module):
    """BERT's pooler (dense + tanh on [CLS]) and its one-logit classifier."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.pooler = _Dense(hidden, hidden)
        self.classifier = nn.Linear(hidden, 1)

    def __call__(self, first: mx.array) -> mx.array:
        return self.classifier(mx.tanh(self.pooler.dense(first)))


class _XlmrClassifier(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, 1)


class _XlmrHead(nn.Module):
    """RobertaClassificationHead: dense + tanh + out_proj on <s>."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.classifier = _XlmrClassifier(hidden)

    def __call__(self, first: mx.array) -> mx.array:
        return self.classifier.out_proj(mx.tanh(self.classifier.dense(first)))


class CrossEncoderModel(nn.Module):
    """Pair ids, mask and segment ids in, one logit per row out."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        check_cross_encoder_config(cfg)
        self.encoder_model = BertModel(cfg)
        hidden = int(cfg["hidden_size"])
        self.head = _XlmrHead(hidden) if cfg.get("model_type") == "xlm-roberta" else _BertHead(hidden)
        self.uses_token_types = int(cfg.get("type_vocab_size", 2)) > 1

    def __call__(self, input_ids: mx.array, attention_mask: mx.array, token_type_ids: mx.array) -> mx.array:
        types = token_type_ids if self.uses_token_types else None  # XLM-R: type 0 everywhere
        hidden = self.encoder_model(input_ids, attention_mask, types)
        return self.head(hidden[:, 0])[:, 0]


def checkpoint_names(weights: dict[str, mx.array]) -> dict[str, mx.array]:
    """Checkpoint keys to `CrossEncoderModel`'s: the encoder under `encoder_model.`, the head under `head.`."""
    named = {}
    for key, value in weights.items():
        if key.endswith("position_ids"):
            continue
        bare = key.removeprefix("bert.").removeprefix("roberta.")
        if bare.startswith(("pooler.", "classifier.")):
            named[f"head.{bare}"] = value
        else:
            named[f"encoder_model.{bare}"] = value
    return named


class MlxCrossEncoder:
    """`CrossEncoder` for BERT and XLM-R sequence classifiers on MLX (Metal, CUDA or CPU)."""

    backend = "mlx"

    def __init__(self, source: ModelSource, precision: str) -> None:
        weights = checkpoint_names(read_safetensors(source.path))
        self.model = CrossEncoderModel(source.config)
        try:
            self.model.load_weights(list(weights.items()), strict=True)
        except ValueError as exc:
            raise ModelLoadError(f"weights in {source.path} do not fit a cross-encoder: {exc}") from None
        self.precision = "f32" if precision == "auto" else precision
        self.model.set_dtype(DTYPES[self.precision])
        mx.eval(self.model.parameters())
        self.device = device_label(mlx_device())

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        out = self.model(mx.array(input_ids), mx.array(attention_mask), mx.array(token_type_ids))
        out = out.astype(mx.float32)
        mx.eval(out)
        return np.array(out, dtype=np.float32)
