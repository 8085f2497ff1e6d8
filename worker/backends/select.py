"""`embedding.backend: auto` and friends: which backend serves a model on this machine."""

from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path

from shared.config import Config, parse_shape_buckets, parse_shape_grid
from worker.embedder import Encoder
from worker.loader import ModelLoadError, ModelSource

OPENVINO_FAMILIES = ("bert",)


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
