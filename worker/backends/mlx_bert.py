"""BERT-family encoders (all-MiniLM-L6-v2 and kin) on mlx.nn, loaded from safetensors.

Module and attribute names mirror the Hugging Face checkpoint so weights load by name.
"""

from __future__ import annotations

import math
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from worker.backends.mlx_common import DTYPES, pooled_rows
from worker.backends.mlx_device import device_label, mlx_device
from worker.backends.mlx_weights import read_safetensors
from worker.loader import ModelLoadError, ModelSource, check_bert_config


class _Embeddings(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        hidden = cfg["hidden_size"]
        self.word_embeddings = nn.Embedding(cfg["vocab_size"], hidden)
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], hidden)
        self.token_type_embeddings = nn.Embedding(cfg.get("type_vocab_size", 2), hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=cfg.get("layer_norm_eps", 1e-12))
        # (XLM-)RoBERTa numbers positions from padding_idx + 1; rows are right-padded, so a real
        # token's position is its index plus that offset.
        self.position_offset = int(cfg.get("pad_token_id", 1)) + 1 if cfg.get("model_type") == "xlm-roberta" else 0

    def __call__(self, input_ids: mx.array, token_type_ids: mx.array | None = None) -> mx.array:
        positions = mx.arange(input_ids.shape[1]) + self.position_offset
        # Without segment ids (an embedded text) every token is type 0.
        table = self.token_type_embeddings
        types = table.weight[0] if token_type_ids is None else table(token_type_ids)
        return self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(positions) + types)


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)


class _Projection(nn.Module):
    def __init__(self, d_in: int, d_out: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)

    def __call__(self, x: mx.array, residual: mx.array) -> mx.array:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.self = _SelfAttention(hidden)
        self.output = _Projection(hidden, hidden, eps)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        b, n, h = x.shape
        d = h // self.heads

        def split(t: mx.array) -> mx.array:
            return t.reshape(b, n, self.heads, d).transpose(0, 2, 1, 3)

        q, k, v = split(self.self.query(x)), split(self.self.key(x)), split(self.self.value(x))
        ctx = mx.fast.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(d), mask=mask)
        return self.output(ctx.transpose(0, 2, 1, 3).reshape(b, n, h), x)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, inner)

    def __call__(self, x: mx.array) -> mx.array:
        return nn.gelu(self.dense(x))  # BERT's "gelu" is the exact erf form


class _Layer(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        hidden, inner, eps = cfg["hidden_size"], cfg["intermediate_size"], cfg.get("layer_norm_eps", 1e-12)
        self.attention = _Attention(hidden, cfg["num_attention_heads"], eps)
        self.intermediate = _Intermediate(hidden, inner)
        self.output = _Projection(inner, hidden, eps)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class _Encoder(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.layer = [_Layer(cfg) for _ in range(cfg["num_hidden_layers"])]


class BertModel(nn.Module):
    """Token ids and mask in, last hidden states out."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        check_bert_config(cfg)
        self.embeddings = _Embeddings(cfg)
        self.encoder = _Encoder(cfg)

    def __call__(self, input_ids: mx.array, attention_mask: mx.array, types: mx.array | None = None) -> mx.array:
        x = self.embeddings(input_ids, types)
        # Additive mask, broadcast over heads and query positions: padding gets -inf-ish.
        bias = ((1 - attention_mask.astype(x.dtype)) * -1e9)[:, None, None, :].astype(x.dtype)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x


def load_weights(model: nn.Module, weights: dict[str, mx.array]) -> None:
    """Load HF BERT weights, dropping the pooler and any `bert.` prefix."""
    cleaned = {}
    for key, value in weights.items():
        key = key.removeprefix("bert.")
        if key.startswith("pooler.") or key.endswith("position_ids"):
            continue
        cleaned[key] = value
    model.load_weights(list(cleaned.items()), strict=True)


class MlxBertEncoder:
    """`Encoder` for BERT-family models on MLX (Metal, CUDA or CPU)."""

    backend = "mlx"

    def __init__(self, source: ModelSource, precision: str) -> None:
        weights = read_safetensors(source.path)
        self.model = BertModel(source.config)
        try:
            load_weights(self.model, weights)
        except ValueError as exc:
            raise ModelLoadError(f"weights in {source.path} do not fit a BERT model: {exc}") from None
        self.precision = "f32" if precision == "auto" else precision
        self.model.set_dtype(DTYPES[self.precision])
        mx.eval(self.model.parameters())
        self.dimension = int(source.config["hidden_size"])
        self.device = device_label(mlx_device())

    def pooled(self, input_ids: np.ndarray, attention_mask: np.ndarray, pooling: str) -> np.ndarray:
        mask = mx.array(attention_mask)
        return pooled_rows(self.model(mx.array(input_ids), mask), mask, pooling)
