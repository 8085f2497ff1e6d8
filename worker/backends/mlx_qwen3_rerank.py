"""Qwen3-Reranker on MLX: a causal LM whose relevance score is its "yes" against "no" at the last position.

The model card scores a pair as softmax([no, yes])[yes] of the next-token logits after the
prompt (`worker.pairs.QWEN3_RERANK_TEMPLATE`). That equals sigmoid(logit_yes - logit_no), so the
one logit per pair this backend returns is that difference: h_last · (W[yes] - W[no]), two rows
of the LM head (the token embeddings where the checkpoint ties them) instead of the whole vocabulary.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from worker.backends.mlx_common import DTYPES
from worker.backends.mlx_device import device_label, mlx_device
from worker.backends.mlx_qwen3 import load_qwen3
from worker.backends.mlx_weights import read_safetensors
from worker.loader import ModelLoadError, ModelSource


def yes_minus_no(weights: dict[str, mx.array], yes: int, no: int, path: object) -> mx.array:
    """The LM head's "yes" row minus its "no" row, float32 (hidden,)."""
    name = "lm_head.weight" if "lm_head.weight" in weights else "model.embed_tokens.weight"
    if name not in weights:
        raise ModelLoadError(f"weights in {path} have neither lm_head.weight nor model.embed_tokens.weight")
    if f"{name.removesuffix('.weight')}.scales" in weights:
        raise ModelLoadError(f"{path}: quantised Qwen3-Reranker checkpoints are not supported yet; use an f32/bf16 one")
    head = weights[name].astype(mx.float32)
    return head[yes] - head[no]


class MlxQwen3Reranker:
    """`CrossEncoder` for Qwen3-Reranker on MLX: right-padded rows, read at each row's last real token."""

    backend = "mlx"

    def __init__(self, source: ModelSource, precision: str, yes: int, no: int) -> None:
        checkpoint = read_safetensors(source.path)
        self.direction = yes_minus_no(checkpoint, yes, no, source.path)
        self.model = load_qwen3(source, checkpoint)
        if precision in DTYPES:
            self.model.set_dtype(DTYPES[precision])
        self.precision = {mx.float32: "f32", mx.bfloat16: "bf16", mx.float16: "f16"}.get(
            self.model.embed_tokens.weight.dtype, "f32"
        )
        mx.eval(self.model.parameters(), self.direction)
        self.device = device_label(mlx_device())

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        # Causal attention: right padding leaves every real token's state as it would be alone.
        hidden = self.model(mx.array(input_ids)).astype(mx.float32)
        last = mx.array(attention_mask.sum(axis=1) - 1)
        states = mx.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
        out = states @ self.direction
        mx.eval(out)
        return np.array(out, dtype=np.float32)
