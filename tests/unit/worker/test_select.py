"""Backend choice (`embedding.backend`) and where OpenVINO caches compiled models."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import load_config
from worker.backends import select
from worker.loader import ModelLoadError


def test_explicit_backends_are_kept() -> None:
    assert select.resolve_backend("mlx", "bert") == "mlx"
    assert select.resolve_backend("mlx", "qwen3") == "mlx"


def test_openvino_refuses_families_it_does_not_serve() -> None:
    with pytest.raises(ModelLoadError, match=r"embedding.backend: openvino does not serve qwen3"):
        select.resolve_backend("openvino", "qwen3")


def test_auto_uses_mlx_for_qwen3_everywhere() -> None:
    assert select.resolve_backend("auto", "qwen3") == "mlx"


@pytest.mark.skipif(not select.is_x86() or select.mlx_has_gpu(), reason="the documented rule for x86 CPUs")
def test_auto_on_this_x86_cpu_is_openvino_for_bert() -> None:
    assert select.resolve_backend("auto", "bert") == "openvino"


def test_auto_prefers_mlx_where_it_has_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "mlx_has_gpu", lambda: True)
    assert select.resolve_backend("auto", "bert") == "mlx"


def test_auto_off_x86_is_mlx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "mlx_has_gpu", lambda: False)
    monkeypatch.setattr(select, "is_x86", lambda: False)
    assert select.resolve_backend("auto", "bert") == "mlx"


def test_compile_cache_lives_under_cache_dir_or_data_dir(tmp_path: Path) -> None:
    cfg = load_config(None, {}, [f"storage.data_dir={tmp_path}"])
    assert select.compile_cache_dir(cfg) == tmp_path / "cache" / "openvino"
    cfg = load_config(None, {}, [f"embedding.cache_dir={tmp_path / 'c'}"])
    assert select.compile_cache_dir(cfg) == tmp_path / "c" / "openvino"
    assert select.compile_cache_dir(load_config(None, {}, ["embedding.compile_cache=false"])) is None
