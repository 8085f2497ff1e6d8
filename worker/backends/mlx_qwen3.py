"""Qwen3-Embedding on MLX through mlx-lm's Qwen3 model, full precision or quantised.

Attention is causal, so right padding leaves every real token's state untouched and
last-token pooling reads the state at each row's last real position.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.models.qwen3 import ModelArgs, Qwen3Model

from worker.backends.mlx_common import DTYPES, pooled_rows
from worker.backends.mlx_device import device_label, mlx_device
from worker.backends.mlx_weights import read_safetensors
from worker.loader import ModelLoadError, ModelSource


def load_qwen3(source: ModelSource, checkpoint: dict[str, mx.array] | None = None) -> Qwen3Model:
    """The decoder stack with its weights (read from the folder unless given), quantised as the checkpoint is."""
    # Qwen3Model checkpoints have bare keys, Qwen3ForCausalLM ones a "model." prefix;
    # the LM head is not part of the stack (embeddings never use it; the reranker takes two rows).
    weights = {
        key.removeprefix("model."): value
        for key, value in (read_safetensors(source.path) if checkpoint is None else checkpoint).items()
        if not key.startswith("lm_head.")
    }
    model = Qwen3Model(ModelArgs.from_dict(source.config))
    quant = source.config.get("quantization")
    if quant:
        nn.quantize(
            model,
            group_size=quant["group_size"],
            bits=quant["bits"],
            class_predicate=lambda path, module: f"{path}.scales" in weights,
        )
    try:
        model.load_weights(list(weights.items()), strict=True)
    except ValueError as exc:
        raise ModelLoadError(f"weights in {source.path} do not fit a Qwen3 model: {exc}") from None
    mx.eval(model.parameters())
    return model


# The labels READY reports: the BERT backend's for the precisions both load in, plus the f16 a checkpoint may ship.
_LABELS = {dtype: label for label, dtype in DTYPES.items()} | {mx.float16: "f16"}


class MlxQwen3Encoder:
    """`Encoder` for Qwen3-Embedding models on MLX."""

    backend = "mlx"

    def __init__(self, source: ModelSource, precision: str) -> None:
        self.model = load_qwen3(source)
        quant = source.config.get("quantization")
        if quant:  # quantised weights stay as the converter made them, whatever was asked
            self.precision = f"int{quant['bits']}"
        else:
            # "auto" keeps the checkpoint's dtype (Qwen ships bf16); f32 and bf16 are honoured as asked.
            if precision in DTYPES:
                self.model.set_dtype(DTYPES[precision])
            dtype = self.model.embed_tokens.weight.dtype
            self.precision = _LABELS.get(dtype, str(dtype).removeprefix("mlx.core."))
        self.dimension = int(source.config["hidden_size"])
        self.device = device_label(mlx_device())

    def pooled(self, input_ids: np.ndarray, attention_mask: np.ndarray, pooling: str) -> np.ndarray:
        mask = mx.array(attention_mask)
        return pooled_rows(self.model(mx.array(input_ids)), mask, pooling)
