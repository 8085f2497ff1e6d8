"""Cross-encoders (BERT and XLM-R sequence classifiers) on OpenVINO's CPU plugin.

The encoder is the embedding path's graph (`openvino_graph.encoder_hidden`) fed with the pair's
segment ids, and the classification head reads the first token's state:

    BERT   (ms-marco-MiniLM-L-6-v2)  classifier(tanh(pooler.dense(h[:, 0])))
    XLM-R  (bge-reranker-*)          classifier.out_proj(tanh(classifier.dense(h[:, 0])))

Built from the folder's safetensors only: the exported graphs some repos ship end in logits
under names of their own, and one source of truth keeps both backends on the same weights.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import openvino as ov
import openvino.opset15 as ops
import structlog

from worker.backends import cpu
from worker.backends.openvino_bert import compile_config, run_precision
from worker.backends.openvino_graph import Weights, encoder_hidden, linear
from worker.loader import ModelSource, check_cross_encoder_config

log = structlog.get_logger("worker.openvino")


def uses_token_types(cfg: dict[str, Any]) -> bool:
    """BERT gives the document segment 1; XLM-R has one segment row and reads type 0 everywhere."""
    return int(cfg.get("type_vocab_size", 2)) > 1


def classification_head(first: ov.Node, w: Weights, model_type: str) -> ov.Node:
    """The first token's state (b, hidden) to one logit per row (b, 1)."""
    if model_type == "xlm-roberta":
        return linear(ops.tanh(linear(first, w, "classifier.dense")), w, "classifier.out_proj")
    return linear(ops.tanh(linear(first, w, "pooler.dense")), w, "classifier")


def build_cross_encoder(source: ModelSource) -> ov.Model:
    """(input_ids, attention_mask[, token_type_ids]) int32 → "logits" (b,) float32."""
    cfg = source.config
    check_cross_encoder_config(cfg)
    w = Weights.read(source.path)
    input_ids = ops.parameter([-1, -1], np.int32, name="input_ids")
    mask = ops.parameter([-1, -1], np.int32, name="attention_mask")
    params = [input_ids, mask]
    types = None
    if uses_token_types(cfg):
        types = ops.parameter([-1, -1], np.int32, name="token_type_ids")
        params.append(types)
    hidden = encoder_hidden(w, cfg, input_ids.output(0), mask.output(0), types.output(0) if types else None)
    first = ops.gather(hidden, ops.constant(np.int32(0)), ops.constant(np.int32(1)))
    head = classification_head(first, w, str(cfg.get("model_type", "bert")))
    logits = ops.squeeze(ops.convert(head, "f32"), ops.constant(np.array([1], dtype=np.int64)))
    result = ops.result(logits, name="logits")
    result.output(0).get_tensor().set_names({"logits"})
    return ov.Model([result], params, "akidb_cross_encoder")


class OpenVinoCrossEncoder:
    """`CrossEncoder` for BERT and XLM-R sequence classifiers on OpenVINO (CPU)."""

    backend = "openvino"
    device = "cpu"

    def __init__(self, source: ModelSource, precision: str, threads: int) -> None:
        started = time.monotonic()
        core = ov.Core()
        flags = cpu.cpu_flags()
        wanted = cpu.auto_precision(flags, core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        wanted = wanted if precision == "auto" else precision
        model = build_cross_encoder(source)
        self._types = uses_token_types(source.config)
        compiled = core.compile_model(model, "CPU", compile_config(wanted, threads))
        self.precision = run_precision(compiled)
        self._request = compiled.create_infer_request()
        log.info(
            "openvino_compiled",
            graph="safetensors",
            head=source.config.get("model_type"),
            precision=self.precision,
            threads=threads or "all",
            seconds=round(time.monotonic() - started, 2),
        )

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._types:
            feed["token_type_ids"] = token_type_ids
        self._request.infer({k: v.astype(np.int32, copy=False) for k, v in feed.items()})
        return np.array(self._request.get_tensor("logits").data, dtype=np.float32).reshape(-1)
