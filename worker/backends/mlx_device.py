"""What MLX runs on here: Metal, CUDA, or the CPU (with or without OpenBLAS)."""

from __future__ import annotations

from worker import blas


def mlx_device() -> str:
    """'metal', 'cuda' or 'cpu', as MLX's default device resolves on this machine."""
    import mlx.core as mx

    if mx.default_device().type == mx.DeviceType.gpu:
        return "metal" if mx.metal.is_available() else "cuda"
    return "cpu"


def device_label(device: str) -> str:
    """The device string READY reports; on the CPU it says which BLAS MLX got."""
    if device != "cpu":
        return device
    return "cpu+openblas" if blas.openblas_loaded() else "cpu+reference-blas"
