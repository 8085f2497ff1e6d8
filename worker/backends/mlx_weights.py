"""Reading a checkpoint's safetensors into MLX arrays, with errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx

from worker import loader


def read_safetensors(folder: Path) -> dict[str, mx.array]:
    """Every tensor in the folder's *.safetensors files, as MLX arrays."""
    # MLX reports a damaged file as any of these.
    return loader.read_safetensors(folder, lambda path: mx.load(str(path)), (RuntimeError, ValueError, OSError))
