"""`embedding.backend`: which engine serves a model, and the errors for impossible choices."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import pytest

from shared.config import Config, EmbeddingConfig
from tests.support import references as refs
from worker.backends import select
from worker.loader import ModelLoadError, ModelSource, locate


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Pretend to be a given machine: platform, CPU, MLX GPU, OpenVINO installed."""

    def set_machine(platform: str, x86: bool, gpu: bool, openvino: bool) -> None:
        monkeypatch.setattr(select.sys, "platform", platform)
        monkeypatch.setattr(select, "is_x86", lambda: x86)
        monkeypatch.setattr(select, "mlx_has_gpu", lambda: gpu)
        monkeypatch.setattr(select, "_openvino_available", lambda: openvino)

    return set_machine


@pytest.mark.parametrize(
    ("platform", "x86", "gpu", "openvino", "family", "expected"),
    [
        ("darwin", False, True, False, "bert", "mlx"),  # Apple silicon: Metal
        ("darwin", True, False, True, "bert", "mlx"),  # an Intel Mac still runs MLX
        ("linux", True, True, True, "bert", "mlx"),  # MLX with CUDA beats a CPU engine
        ("linux", True, False, True, "bert", "openvino"),  # x86 CPU: OpenVINO
        ("linux", True, False, True, "qwen3", "mlx"),  # OpenVINO does not serve Qwen3 here
        ("linux", True, False, True, "xlm-roberta", "openvino"),  # bge-reranker on an x86 CPU
        ("darwin", False, True, False, "xlm-roberta", "mlx"),
        ("linux", True, False, False, "bert", "mlx"),  # OpenVINO not installed
        ("linux", False, False, True, "bert", "mlx"),  # ARM Linux CPU
    ],
)
def test_auto(machine, platform: str, x86: bool, gpu: bool, openvino: bool, family: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    machine(platform, x86, gpu, openvino)
    assert select.resolve_backend("auto", family) == expected


def test_mlx_when_asked(machine) -> None:  # type: ignore[no-untyped-def]
    machine("linux", True, False, True)
    assert select.resolve_backend("mlx", "bert") == "mlx"
    assert select.resolve_backend("mlx", "qwen3") == "mlx"


def test_openvino_for_qwen3_is_refused_with_the_fix() -> None:
    with pytest.raises(ModelLoadError, match=r"openvino does not serve qwen3 models; use embedding.backend: mlx"):
        select.resolve_backend("openvino", "qwen3")


def test_openvino_not_installed_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(select.importlib.util, "find_spec", lambda name: None if name == "openvino" else real(name))
    with pytest.raises(ModelLoadError, match="openvino is not installed here; pip install openvino, or use mlx"):
        select.resolve_backend("openvino", "bert")


def source(folder: str, **changes: object) -> ModelSource:
    path = refs.TINY_RERANKERS[folder]
    return replace(locate(replace(EmbeddingConfig(), model_name="tiny", model_path=str(path))), **changes)  # type: ignore[arg-type]


def test_an_embedding_worker_refuses_a_reranker_saying_what_it_is() -> None:
    with pytest.raises(ModelLoadError, match=r"model 'tiny' is a reranker \(a cross-encoder\).*makes no embeddings"):
        select.build_encoder("openvino", source("bert"), Config())


def test_xlmr_embedders_are_not_served() -> None:
    with pytest.raises(ModelLoadError, match=r"xlm-roberta models are served only as rerankers"):
        select.build_encoder("mlx", source("xlmr", kind="embed"), Config())


def test_a_reranker_must_be_a_classifier_or_qwen3_reranker() -> None:
    with pytest.raises(ModelLoadError, match=r"'tiny' is not a reranker this worker implements"):
        select.build_reranker("openvino", source("bert", kind="embed"), Config())
    with pytest.raises(ModelLoadError, match=r"'tiny' is not a reranker this worker implements"):
        select.build_reranker("mlx", source("bert", family="t5"), Config())


def test_qwen3_reranker_runs_on_mlx_only() -> None:
    with pytest.raises(ModelLoadError, match=r"Qwen3-Reranker runs on MLX only; use embedding.backend: mlx"):
        select.build_reranker("openvino", source("qwen3", kind="rerank"), Config())
