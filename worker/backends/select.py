"""`embedding.backend: auto` and friends: which backend serves a model on this machine."""

from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path

from shared.config import Config, parse_shape_buckets, parse_shape_grid
from worker.embedder import Encoder
from worker.loader import ModelLoadError, ModelSource
from worker.pairs import QWEN3_RERANK_TEMPLATE, PairTokenizer, TemplatePairTokenizer
from worker.reranker import CrossEncoder, Reranker

OPENVINO_FAMILIES = ("bert", "xlm-roberta")
# Cross-encoders: BERT and XLM-R sequence classifiers (both backends), Qwen3-Reranker (MLX).
RERANK_FAMILIES = ("bert", "xlm-roberta", "qwen3")


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def mlx_has_gpu() -> bool:
    """Metal or CUDA available to MLX (importing mlx.core is cheap and loads no model)."""
    try:
        import mlx.core as mx
    except ImportError:
        return False
    return bool(mx.default_device().type == mx.DeviceType.gpu)


def resolve_backend(requested: str, family: str) -> str:
    """MLX on Apple silicon and wherever MLX has a GPU; OpenVINO on x86 CPUs; else MLX."""
    if requested == "openvino":
        if family not in OPENVINO_FAMILIES:
            raise ModelLoadError(
                f"embedding.backend: openvino does not serve {family} models; use embedding.backend: mlx (or auto)"
            )
        if importlib.util.find_spec("openvino") is None:
            raise ModelLoadError("embedding.backend: openvino is not installed here; pip install openvino, or use mlx")
        return "openvino"
    if requested == "mlx":
        return "mlx"
    if sys.platform == "darwin" or mlx_has_gpu():
        return "mlx"
    if is_x86() and family in OPENVINO_FAMILIES and _openvino_available():
        return "openvino"
    return "mlx"


def _openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def compile_cache_dir(cfg: Config) -> Path | None:
    """Where OpenVINO keeps compiled models: under embedding.cache_dir, else storage.data_dir/cache."""
    if not cfg.embedding.compile_cache:
        return None
    base = Path(cfg.embedding.cache_dir) if cfg.embedding.cache_dir else Path(cfg.storage.data_dir) / "cache"
    return base.expanduser() / "openvino"


def build_encoder(backend: str, source: ModelSource, cfg: Config) -> Encoder:
    """Construct the chosen backend's encoder (importing its engine only now)."""
    emb = cfg.embedding
    if source.kind == "rerank":
        raise ModelLoadError(
            f"model {source.name!r} is a reranker (a cross-encoder): it scores (query, document) pairs and makes no "
            "embeddings; `akidb-worker` serves it through `build_reranker`"
        )
    if source.family not in ("bert", "qwen3"):
        raise ModelLoadError(f"{source.family} models are served only as rerankers; choose a BERT or Qwen3 embedder")
    if backend == "openvino":
        from worker.backends.openvino_bert import OpenVinoBertEncoder

        buckets = parse_shape_buckets(emb.shape_buckets)
        grid = parse_shape_grid(emb.shape_grid)
        return OpenVinoBertEncoder(source, emb.precision, emb.num_threads, compile_cache_dir(cfg), buckets, grid)
    if source.family == "qwen3":
        from worker.backends.mlx_qwen3 import MlxQwen3Encoder

        return MlxQwen3Encoder(source, emb.precision)
    from worker.backends.mlx_bert import MlxBertEncoder

    return MlxBertEncoder(source, emb.precision)


def build_reranker(backend: str, source: ModelSource, cfg: Config) -> Reranker:
    """A rerank model's tokenizer and the chosen backend's cross-encoder (importing its engine only now)."""
    emb = cfg.embedding
    if source.kind != "rerank" or source.family not in RERANK_FAMILIES:
        raise ModelLoadError(
            f"model {source.name!r} is not a reranker this worker implements (BERT or XLM-RoBERTa sequence "
            "classifiers, Qwen3-Reranker); supported: ms-marco-MiniLM-L-6-v2, bge-reranker-base, "
            "bge-reranker-v2-m3, qwen3-reranker-0.6b and their kin"
        )
    cross: CrossEncoder
    if source.family == "qwen3":
        if backend != "mlx":
            raise ModelLoadError("Qwen3-Reranker runs on MLX only; use embedding.backend: mlx (or auto)")
        from worker.backends.mlx_qwen3_rerank import MlxQwen3Reranker

        prompts = TemplatePairTokenizer.from_folder(source.path, source.max_tokens, QWEN3_RERANK_TEMPLATE)
        cross = MlxQwen3Reranker(source, emb.precision, prompts.token_id("yes"), prompts.token_id("no"))
        return Reranker(source, prompts, cross, emb.batch_size)
    if backend == "openvino":
        from worker.backends.openvino_rerank import OpenVinoCrossEncoder

        cross = OpenVinoCrossEncoder(source, emb.precision, emb.num_threads)
    else:
        from worker.backends.mlx_rerank import MlxCrossEncoder

        cross = MlxCrossEncoder(source, emb.precision)
    return Reranker(source, PairTokenizer.from_folder(source.path, source.max_tokens), cross, emb.batch_size)
