"""A BERT encoder as an OpenVINO graph, built op by op from a checkpoint's safetensors.

No torch, no ONNX: the weights become constants and the forward pass is spelled in
OpenVINO's opset (gather, mvn, matmul, scaled_dot_product_attention, gelu). The pooling
head (`pooling_head`) is shared with graphs read from IR/ONNX files, so every source ends in
the same three outputs: "mean", "cls" and "last", each (batch, hidden) float32.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import openvino.opset15 as ops

from worker.loader import ModelLoadError, check_bert_config, read_safetensors

POOLED_OUTPUTS = ("mean", "cls", "last")
# Old BERT checkpoints name LayerNorm parameters gamma/beta.
_RENAMES = {".gamma": ".weight", ".beta": ".bias"}


def read_weights(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor in the folder's *.safetensors as float32 numpy, with any `bert.`/`roberta.` prefix dropped."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    def load(path: Path) -> dict[str, np.ndarray]:
        try:
            return load_file(str(path))
        except (TypeError, ValueError) as exc:  # e.g. bf16 tensors, which numpy cannot hold
            raise ModelLoadError(f"cannot read {path} as numpy arrays: {exc}") from None

    weights: dict[str, np.ndarray] = {}
    for key, value in read_safetensors(folder, load, (SafetensorError, OSError)).items():
        # Sequence classifiers keep the encoder under `bert.` (BERT) or `roberta.` (XLM-R).
        key = key.removeprefix("bert.").removeprefix("roberta.")
        for old, new in _RENAMES.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
        weights[key] = value.astype(np.float32, copy=False)
    return weights


class Weights:
    """Checked access to the checkpoint: a missing tensor is a load error naming it."""

    def __init__(self, tensors: dict[str, np.ndarray], folder: Path) -> None:
        self.tensors = tensors
        self.folder = folder

    @classmethod
    def read(cls, folder: Path) -> Weights:
        return cls(read_weights(folder), folder)

    def __call__(self, name: str) -> np.ndarray:
        try:
            return self.tensors[name]
        except KeyError:
            raise ModelLoadError(f"weights in {self.folder} do not fit a BERT model: {name} is missing") from None

    def const(self, name: str) -> ov.Node:
        return ops.constant(self(name))


def linear(x: ov.Node | ov.Output, w: Weights, prefix: str) -> ov.Node:
    """HF `nn.Linear` named `prefix`: x @ weight.T + bias."""
    # HF Linear stores (out, in); transpose_b multiplies by its transpose without a copy.
    return ops.add(ops.matmul(x, w.const(f"{prefix}.weight"), False, True), w.const(f"{prefix}.bias"))


def _layer_norm(x: ov.Node, w: Weights, prefix: str, eps: float) -> ov.Node:
    normed = ops.mvn(x, ops.constant(np.array([-1], dtype=np.int64)), True, eps, "inside_sqrt")
    return ops.add(ops.multiply(normed, w.const(f"{prefix}.weight")), w.const(f"{prefix}.bias"))


def _attention(x: ov.Node, keep: ov.Node, w: Weights, prefix: str, heads: int, hidden: int) -> ov.Node:
    head_dim = hidden // heads
    split_shape = ops.constant(np.array([0, 0, heads, head_dim], dtype=np.int64))
    order = ops.constant(np.array([0, 2, 1, 3], dtype=np.int64))

    def split(t: ov.Node) -> ov.Node:  # (b, n, h) -> (b, heads, n, head_dim)
        return ops.transpose(ops.reshape(t, split_shape, special_zero=True), order)

    q, k, v = (split(linear(x, w, f"{prefix}.self.{name}")) for name in ("query", "key", "value"))
    scale = ops.constant(np.float32(1.0 / math.sqrt(head_dim)))
    ctx = ops.scaled_dot_product_attention(q, k, v, keep, scale)
    merged = ops.reshape(ops.transpose(ctx, order), ops.constant(np.array([0, 0, hidden], dtype=np.int64)), True)
    return merged


def build_bert(folder: Path, cfg: dict[str, Any]) -> ov.Model:
    """(input_ids, attention_mask) int32 → pooled outputs, for a Hugging Face BERT checkpoint."""
    input_ids = ops.parameter([-1, -1], np.int32, name="input_ids")
    mask = ops.parameter([-1, -1], np.int32, name="attention_mask")
    hidden = bert_hidden(folder, cfg, input_ids.output(0), mask.output(0))
    return ov.Model(pooling_head(hidden, mask.output(0)), [input_ids, mask], "akidb_bert")


def bert_hidden(folder: Path, cfg: dict[str, Any], input_ids: ov.Output, mask: ov.Output) -> ov.Output:
    """The encoder stack's last hidden states (b, n, hidden) for int32 ids and mask."""
    return encoder_hidden(Weights.read(folder), cfg, input_ids, mask)


def position_offset(cfg: dict[str, Any]) -> int:
    """Where position ids start: 0 for BERT; padding_idx + 1 for (XLM-)RoBERTa."""
    return int(cfg.get("pad_token_id", 1)) + 1 if cfg.get("model_type") == "xlm-roberta" else 0


def encoder_hidden(
    w: Weights, cfg: dict[str, Any], input_ids: ov.Output, mask: ov.Output, token_types: ov.Output | None = None
) -> ov.Output:
    """BERT's (or XLM-R's) last hidden states (b, n, hidden); `token_types` None: every token is segment 0."""
    check_bert_config(cfg)
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    zero, one = ops.constant(np.int32(0)), ops.constant(np.int32(1))
    # Rows are right-padded, so a real token's position is its index (+ the offset); padded
    # positions are masked out of every real token's attention.
    start = ops.constant(np.int32(position_offset(cfg)))
    stop = ops.add(ops.gather(ops.shape_of(input_ids, "i32"), one, zero), start)
    positions = ops.range(start, stop, one, "i32")
    x = ops.add(
        ops.gather(w.const("embeddings.word_embeddings.weight"), input_ids, zero),
        ops.gather(w.const("embeddings.position_embeddings.weight"), positions, zero),
    )
    type_table = w("embeddings.token_type_embeddings.weight")
    # Without segment ids every token is type 0: a constant row instead of a gather.
    types = ops.constant(type_table[0]) if token_types is None else ops.gather(type_table, token_types, zero)
    x = ops.add(x, types)
    x = _layer_norm(x, w, "embeddings.LayerNorm", eps)
    # (b, 1, 1, n) booleans: True where a key position is a real token, broadcast over heads and queries.
    keep = ops.unsqueeze(ops.convert(mask, "boolean"), ops.constant(np.array([1, 2], dtype=np.int64)))
    for i in range(int(cfg["num_hidden_layers"])):
        p = f"encoder.layer.{i}"
        attn = linear(_attention(x, keep, w, f"{p}.attention", heads, hidden), w, f"{p}.attention.output.dense")
        x = _layer_norm(ops.add(attn, x), w, f"{p}.attention.output.LayerNorm", eps)
        inner = ops.gelu(linear(x, w, f"{p}.intermediate.dense"), "erf")  # BERT's "gelu" is the exact erf form
        x = _layer_norm(ops.add(linear(inner, w, f"{p}.output.dense"), x), w, f"{p}.output.LayerNorm", eps)
    return x.output(0)


def pooling_head(hidden: ov.Output, mask: ov.Output) -> list[ov.Node]:
    """Results named "mean", "cls" and "last": the poolings of `hidden` (b, n, h) under `mask` (b, n)."""
    states = ops.convert(hidden, "f32")
    ones = ops.convert(mask, "f32")
    weights = ops.unsqueeze(ones, ops.constant(np.int64(-1)))
    axis1 = ops.constant(np.array([1], dtype=np.int64))
    total = ops.reduce_sum(ops.multiply(states, weights), axis1, False)
    count = ops.maximum(ops.reduce_sum(weights, axis1, False), ops.constant(np.float32(1e-9)))
    mean = ops.divide(total, count)
    cls = ops.gather(states, ops.constant(np.int32(0)), ops.constant(np.int32(1)))
    last_index = ops.subtract(ops.reduce_sum(ops.convert(mask, "i32"), axis1, False), ops.constant(np.int32(1)))
    last = ops.gather(states, last_index, ops.constant(np.int32(1)), batch_dims=1)
    results = [ops.result(node, name=name) for node, name in zip((mean, cls, last), POOLED_OUTPUTS, strict=True)]
    for result, name in zip(results, POOLED_OUTPUTS, strict=True):
        result.output(0).get_tensor().set_names({name})
    return results
