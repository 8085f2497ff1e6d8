"""Reading a checkpoint's safetensors into MLX arrays, with errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx

from worker.loader import ModelLoadError


def read_safetensors(folder: Path) -> dict[str, mx.array]:
    """Every tensor in the folder's *.safetensors files (sharded checkpoints have several)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(
            f"no .safetensors file in {folder}; point embedding.model_path at a Hugging Face model folder "
            "(convert .bin checkpoints to safetensors first)"
        )
    weights: dict[str, mx.array] = {}
    for path in files:
        try:
            loaded = mx.load(str(path))
        except (RuntimeError, ValueError, OSError) as exc:  # MLX reports a damaged file as any of these
            raise ModelLoadError(
                f"cannot read {path}: {exc}; the file is damaged or incomplete: download the model again "
                "(delete it from the Hugging Face cache) or fix embedding.model_path"
            ) from None
        if not isinstance(loaded, dict):
            raise ModelLoadError(f"{path} holds no named tensors; is it a safetensors checkpoint?")
        weights.update(loaded)
    return weights
