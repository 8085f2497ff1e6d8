"""`backend: auto` on this very machine, and where OpenVINO caches compiled models."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import load_config
from worker.backends import select


@pytest.mark.skipif(not select.is_x86() or select.mlx_has_gpu(), reason="the documented rule for x86 CPUs")
def test_auto_on_this_x86_cpu_is_openvino_for_bert_and_mlx_for_qwen3() -> None:
    # No mocks: the real platform, CPU, MLX device and installed packages decide.
    assert select.resolve_backend("auto", "bert") == "openvino"
    assert select.resolve_backend("auto", "qwen3") == "mlx"


def test_compile_cache_lives_under_cache_dir_or_data_dir(tmp_path: Path) -> None:
    on = "embedding.compile_cache=true"
    cfg = load_config(None, {}, [f"storage.data_dir={tmp_path}", on])
    assert select.compile_cache_dir(cfg) == tmp_path / "cache" / "openvino"
    cfg = load_config(None, {}, [f"embedding.cache_dir={tmp_path / 'c'}", on])
    assert select.compile_cache_dir(cfg) == tmp_path / "c" / "openvino"
    assert select.compile_cache_dir(load_config(None, {}, [])) is None  # off by default: see shared/config.py
