"""BERT-family encoders on OpenVINO's CPU plugin: the fast backend on x86 CPUs.

The graph comes from the model folder's safetensors (`openvino_graph.build_bert`), or from
an OpenVINO IR / ONNX file the folder ships, with the same pooling head on top. No torch.

Small passes (a query: one or two short texts) run on static-shape copies of the model, one per
`embedding.shape_buckets` entry, padded up to the bucket: a dynamic-shape model re-infers every
node's shapes and re-prepares its kernels on each call, which at batch 1 costs about as much as
the forward pass itself. Padding is invisible in the output: attention and every pooling are
mask-aware, and padded rows (copies of the first) are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import structlog

from worker.backends import cpu
from worker.backends.openvino_graph import POOLED_OUTPUTS, build_bert, pooling_head
from worker.loader import ModelLoadError, ModelSource

log = structlog.get_logger("worker.openvino")

# Where sentence-transformers / optimum put exported graphs in a Hugging Face model repo.
SHIPPED_GRAPHS = ("openvino/openvino_model.xml", "openvino_model.xml", "onnx/model.onnx", "model.onnx")
# Outputs of exported graphs that hold the last hidden states.
HIDDEN_OUTPUTS = ("last_hidden_state", "token_embeddings")
_PRECISIONS = {"f32": "f32", "bf16": "bf16", "f16": "f16"}


def shipped_graph(folder: Path) -> Path | None:
    """An exported graph in the model folder, if it ships one."""
    return next((folder / rel for rel in SHIPPED_GRAPHS if (folder / rel).is_file()), None)


def read_shipped(core: ov.Core, path: Path) -> ov.Model:
    """An exported encoder (IR or ONNX) with our pooling head on its hidden states."""
    model = core.read_model(str(path))
    params = {p.get_friendly_name(): p for p in model.get_parameters()}
    if "input_ids" not in params or "attention_mask" not in params:
        raise ModelLoadError(f"{path} must take input_ids and attention_mask; it takes {', '.join(params)}")
    results = model.get_results()
    # A Result's input is the node that computes it; pooling must hang off that, not the Result.
    result = next((r for r in results if r.output(0).get_names() & set(HIDDEN_OUTPUTS)), results[0])
    hidden = result.input_value(0)
    if hidden.get_partial_shape().rank.get_length() != 3:
        raise ModelLoadError(f"{path}: output {result.get_friendly_name()} is not (batch, tokens, hidden)")
    return ov.Model(pooling_head(hidden, params["attention_mask"].output(0)), list(model.get_parameters()))


def compile_config(precision: str, threads: int) -> dict[str, Any]:
    """CPU plugin settings: one stream (the worker runs one job at a time), latency first."""
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        # Pinning would put every worker process's threads on the same first cores.
        "ENABLE_CPU_PINNING": False,
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


def run_precision(compiled: ov.CompiledModel) -> str:
    """The precision the compiled model really computes in (the plugin may ignore the hint)."""
    name = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return _PRECISIONS.get(name, name)


class OpenVinoBertEncoder:
    """`Encoder` for BERT-family models on OpenVINO (CPU)."""

    backend = "openvino"
    device = "cpu"

    def __init__(
        self,
        source: ModelSource,
        precision: str,
        threads: int,
        cache_dir: Path | None,
        shape_buckets: Sequence[tuple[int, int]] = (),
        shape_grid: tuple[int, int] = (1, 1),
    ) -> None:
        started = time.monotonic()
        self.grid = shape_grid
        # Padding never goes past the positions the model has (BERT: 512).
        self._max_width = int(source.config.get("max_position_embeddings", 1 << 30))
        core = ov.Core()
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache_dir)})
        flags = cpu.cpu_flags()
        wanted = cpu.auto_precision(flags, core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        wanted = wanted if precision == "auto" else precision
        shipped = shipped_graph(source.path)
        model = read_shipped(core, shipped) if shipped else build_bert(source.path, source.config)
        self.graph = str(shipped.relative_to(source.path)) if shipped else "safetensors"
        self._inputs = {p.get_friendly_name(): p.get_element_type().to_dtype() for p in model.get_parameters()}
        config = compile_config(wanted, threads)
        compiled = core.compile_model(model, "CPU", config)
        self.precision = run_precision(compiled)
        if self.precision != wanted:
            log.warning(
                "precision_fallback",
                requested=wanted,
                running=self.precision,
                hint="this CPU has no native bf16 (AMX or AVX512-BF16); OpenVINO runs f32",
            )
        self._request = compiled.create_infer_request()
        self.dimension = int(source.config["hidden_size"])
        # (texts, tokens) -> a request on the model compiled for exactly that shape, smallest first.
        self._static = static_requests(core, model, config, shape_buckets)
        log.info(
            "openvino_compiled",
            graph=self.graph,
            precision=self.precision,
            shape_buckets=",".join(f"{b}x{w}" for b, w in self._static) or None,
            threads=threads or "all",
            cache_dir=str(cache_dir) if cache_dir else None,
            native_bf16=cpu.has_native_bf16(flags),
            seconds=round(time.monotonic() - started, 2),
        )

    def pooled(self, input_ids: np.ndarray, attention_mask: np.ndarray, pooling: str) -> np.ndarray:
        if pooling not in POOLED_OUTPUTS:
            raise ValueError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLED_OUTPUTS)}")
        rows, width = input_ids.shape
        request = self._request
        bucket = self.bucket(rows, width)
        if bucket is not None:
            request = self._static[bucket]
            input_ids, attention_mask = pad_to(input_ids, attention_mask, *bucket)
        else:
            shape = on_grid(rows, width, self.grid, self._max_width)
            if shape != (rows, width):
                input_ids, attention_mask = pad_to(input_ids, attention_mask, *shape)
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._inputs:  # exported graphs take it; every text is segment 0
            feed["token_type_ids"] = np.zeros_like(input_ids)
        request.infer({k: v.astype(self._inputs[k], copy=False) for k, v in feed.items()})
        return np.array(request.get_tensor(pooling).data[:rows], dtype=np.float32)

    def bucket(self, rows: int, width: int) -> tuple[int, int] | None:
        """The smallest static shape that holds a (rows, width) pass, or None (the dynamic model)."""
        return next((b for b in self._static if b[0] >= rows and b[1] >= width), None)


def static_requests(
    core: ov.Core, model: ov.Model, config: dict[str, Any], buckets: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], ov.InferRequest]:
    """One infer request per bucket, on a copy of `model` reshaped to it, run once (first-call costs)."""
    requests: dict[tuple[int, int], ov.InferRequest] = {}
    for rows, width in sorted(buckets, key=lambda b: (b[0] * b[1], b[0])):
        fixed = model.clone()
        try:
            fixed.reshape({p.output(0): ov.PartialShape([rows, width]) for p in fixed.get_parameters()})
            request = core.compile_model(fixed, "CPU", config).create_infer_request()
        except RuntimeError as exc:  # an exported graph with shape-specific ops: it stays dynamic
            log.warning("shape_bucket_skipped", bucket=f"{rows}x{width}", reason=str(exc).splitlines()[0])
            continue
        ones = {p.get_friendly_name(): np.ones((rows, width), p.get_element_type().to_dtype())
                for p in fixed.get_parameters()}  # fmt: skip
        request.infer(ones)
        requests[(rows, width)] = request
    return requests


def on_grid(rows: int, width: int, grid: tuple[int, int], max_width: int) -> tuple[int, int]:
    """The shape a dynamic-model pass is padded to: texts above `grid[0]` up to its next multiple, tokens up to
    the next multiple of `grid[1]` (at most `max_width`). Up to `grid[0]` texts stay exact: small passes are
    common, and padding them would double their work."""
    step_rows, step_width = grid
    if rows > step_rows:
        rows = -(-rows // step_rows) * step_rows
    return rows, max(width, min(-(-width // step_width) * step_width, max_width))


def pad_to(input_ids: np.ndarray, attention_mask: np.ndarray, rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to (rows, width): padded tokens have mask 0; padded rows repeat the first row."""
    n, w = input_ids.shape
    ids = np.zeros((rows, width), dtype=input_ids.dtype)
    mask = np.zeros((rows, width), dtype=attention_mask.dtype)
    ids[:n, :w], mask[:n, :w] = input_ids, attention_mask
    ids[n:], mask[n:] = ids[0], mask[0]  # a real sequence: no all-masked row for the kernels to meet
    return ids, mask
